package admin

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/udpd/udpd/service/handoff"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

// errorDomain is the ErrorInfo domain of every error udpd returns.
const errorDomain = "udpd.admin.v1"

// toStatus maps a manager (or sampler) error to a gRPC status with an ErrorInfo (and a
// BadRequest for a bad field). It is the only place that does.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code, reason := codes.Internal, "INTERNAL"
	for _, m := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{manager.ErrNotFound, codes.NotFound, "LISTENER_NOT_FOUND"},
		{manager.ErrAlreadyExists, codes.AlreadyExists, "LISTENER_ALREADY_EXISTS"},
		{manager.ErrInvalidID, codes.InvalidArgument, "INVALID_ID"},
		{manager.ErrInvalidAddress, codes.InvalidArgument, "INVALID_ADDRESS"},
		{manager.ErrInvalidArgument, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{manager.ErrAddressInUse, codes.FailedPrecondition, "ADDRESS_IN_USE"},
		{manager.ErrPermission, codes.FailedPrecondition, "BIND_PERMISSION_DENIED"},
		{manager.ErrAddressNotAvailable, codes.FailedPrecondition, "ADDRESS_NOT_AVAILABLE"},
		{manager.ErrQuotaExceeded, codes.ResourceExhausted, "LISTENER_QUOTA_EXCEEDED"},
		{manager.ErrNoResources, codes.ResourceExhausted, "OUT_OF_RESOURCES"},
		{manager.ErrStateSave, codes.Unavailable, "STATE_SAVE_FAILED"},
		{manager.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
		{manager.ErrVersionMismatch, codes.Aborted, "CONFIG_VERSION_MISMATCH"},
		{manager.ErrUpgrading, codes.Unavailable, "UPGRADING"},
		{sampler.ErrTooManyWatchers, codes.ResourceExhausted, "WATCHER_QUOTA_EXCEEDED"},
		{sampler.ErrStopped, codes.Unavailable, "SHUTTING_DOWN"},
		{handoff.ErrFailed, codes.FailedPrecondition, "UPGRADE_FAILED"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "DEADLINE_EXCEEDED"},
		{context.Canceled, codes.Canceled, "CANCELED"},
	} {
		if errors.Is(err, m.err) {
			code, reason = m.code, m.reason
			break
		}
	}
	return withDetails(code, reason, err)
}

// managedByFile is the status of a change refused because a configuration
// file manages the listeners.
func managedByFile(path string) error {
	return withDetails(codes.FailedPrecondition, "CONFIG_FILE_MANAGED",
		fmt.Errorf("listeners are managed by the configuration file %s: edit it and reload (SIGHUP), or start udpd with --allow-imperative", path))
}

// invalid is the status of a request field the edge itself rejects.
func invalid(field, value, reason string) error {
	return withDetails(codes.InvalidArgument, "INVALID_ARGUMENT",
		&manager.FieldError{Field: field, Value: value, Reason: reason, Err: manager.ErrInvalidArgument})
}

func withDetails(code codes.Code, reason string, err error) error {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}
	var fe *manager.FieldError
	st := status.New(code, err.Error())
	details := []protoadapt.MessageV1{info}
	if errors.As(err, &fe) {
		info.Metadata = map[string]string{"field": fe.Field}
		details = append(details, &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.Field, Description: fe.Reason}},
		})
	}
	if with, derr := st.WithDetails(details...); derr == nil {
		st = with
	}
	return st.Err()
}
