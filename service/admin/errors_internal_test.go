package admin

import (
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/udpd/udpd/service/handoff"
	"github.com/udpd/udpd/service/manager"
)

// TestToStatus is the whole mapping table, including errors the other
// tests cannot provoke (a bind refused on a low port when running as root,
// running out of descriptors).
func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{manager.ErrNotFound, codes.NotFound, "LISTENER_NOT_FOUND"},
		{manager.ErrAlreadyExists, codes.AlreadyExists, "LISTENER_ALREADY_EXISTS"},
		{manager.ErrInvalidID, codes.InvalidArgument, "INVALID_ID"},
		{manager.ErrInvalidAddress, codes.InvalidArgument, "INVALID_ADDRESS"},
		{manager.ErrAddressInUse, codes.FailedPrecondition, "ADDRESS_IN_USE"},
		{manager.ErrPermission, codes.FailedPrecondition, "BIND_PERMISSION_DENIED"},
		{manager.ErrAddressNotAvailable, codes.FailedPrecondition, "ADDRESS_NOT_AVAILABLE"},
		{manager.ErrQuotaExceeded, codes.ResourceExhausted, "LISTENER_QUOTA_EXCEEDED"},
		{manager.ErrNoResources, codes.ResourceExhausted, "OUT_OF_RESOURCES"},
		{manager.ErrStateSave, codes.Unavailable, "STATE_SAVE_FAILED"},
		{manager.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
		{manager.ErrUpgrading, codes.Unavailable, "UPGRADING"},
		{manager.ErrVersionMismatch, codes.Aborted, "CONFIG_VERSION_MISMATCH"},
		{handoff.ErrFailed, codes.FailedPrecondition, "UPGRADE_FAILED"},
		{fmt.Errorf("something else"), codes.Internal, "INTERNAL"},
	} {
		st := status.Convert(toStatus(fmt.Errorf("start %q: %w", "x", tc.err)))
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if i, ok := d.(*errdetails.ErrorInfo); ok {
				info = i
			}
		}
		if st.Code() != tc.code || info.GetReason() != tc.reason || info.GetDomain() != errorDomain {
			t.Errorf("toStatus(%v) = %v %v, want %v with reason %s", tc.err, st.Code(), info, tc.code, tc.reason)
		}
	}
}
