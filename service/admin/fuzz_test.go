package admin_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

// FuzzRequestValidation sends requests of any shape to the service in
// process. Whatever the manager's validation rejects must come back as
// INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming the field,
// and must change nothing. Requests that pass validation are not started:
// the fuzzer would bind sockets on arbitrary addresses.
func FuzzRequestValidation(f *testing.F) {
	f.Add("a", "127.0.0.1:12000", uint32(0), 0.0, uint32(0), 0.0, int64(0))
	f.Add("", ":", uint32(1), -1.0, uint32(1), 0.5, int64(-1))
	f.Add("Bad_ID", "[::1]:99999", uint32(5000), 1e300, uint32(1<<31), 3.0, int64(1<<62))
	f.Add("x", "localhost:0", uint32(2), 10.0, uint32(5), 1.0, int64(1e9))
	f.Add("\x00", "foo:bar", uint32(0), 0.0, uint32(0), 0.0, int64(0))
	m := manager.New(manager.Options{})
	svc := admin.NewService(m, sampler.New(m, sampler.Options{}), make(chan struct{}))
	f.Fuzz(func(t *testing.T, id, address string, workers uint32, rate float64, burst uint32, ratio float64, drainNanos int64) {
		ctx := context.Background()
		limits := &adminv1.Limits{PerSecond: rate, Burst: burst, MaxReplyRatio: ratio}
		spec := manager.Spec{ID: id, Address: address, Workers: int(workers), Limits: &manager.Limits{PerSecond: rate, Burst: int(burst), MaxReplyRatio: ratio}}
		if _, err := manager.ValidateSpec(spec); err != nil && address != "" {
			_, err := svc.StartListener(ctx, &adminv1.StartListenerRequest{Id: id, Address: address, Workers: workers, Limits: limits})
			wantInvalid(t, err)
		}
		// Stop and rebind of whatever id: never a crash, never a change.
		drain := durationpb.New(0)
		drain.Seconds, drain.Nanos = drainNanos/1e9, int32(drainNanos%1e9)
		_, err := svc.StopListener(ctx, &adminv1.StopListenerRequest{Id: id, DrainTimeout: drain})
		wantCode(t, err, codes.NotFound, codes.InvalidArgument)
		_, err = svc.RebindListener(ctx, &adminv1.RebindListenerRequest{Id: id, Address: address, DrainTimeout: drain})
		wantCode(t, err, codes.NotFound, codes.InvalidArgument)
		_, err = svc.ListListeners(ctx, &adminv1.ListListenersRequest{PageSize: int32(workers), PageToken: address})
		wantCode(t, err, codes.OK, codes.InvalidArgument)
		if ls, _ := m.List("", 0); len(ls) != 0 {
			t.Fatalf("a rejected request left %d listeners", len(ls))
		}
	})
}

func wantInvalid(t *testing.T, err error) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	var info *errdetails.ErrorInfo
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			br = d
		}
	}
	if info == nil || info.GetDomain() != "udpd.admin.v1" || br == nil || len(br.GetFieldViolations()) != 1 {
		t.Fatalf("INVALID_ARGUMENT without ErrorInfo and one BadRequest field: %v", st.Details())
	}
}

func wantCode(t *testing.T, err error, codes ...codes.Code) {
	t.Helper()
	got := status.Code(err)
	for _, c := range codes {
		if got == c {
			if errors.Is(err, context.Canceled) {
				t.Fatalf("unexpected cancellation: %v", err)
			}
			return
		}
	}
	t.Fatalf("got %v, want one of %v", err, codes)
}
