package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// drainingServer answers StopListener and RebindListener only if the
// call's deadline leaves time for udpd to drain for the whole drain
// timeout asked for, as udpd may.
type drainingServer struct {
	adminv1.UnimplementedListenerServiceServer
}

func roomToDrain(ctx context.Context, d time.Duration) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		return status.Error(codes.FailedPrecondition, "the call has no deadline")
	}
	if left := time.Until(deadline); left < d {
		return status.Errorf(codes.FailedPrecondition, "the call's deadline leaves %v, less than the drain of %v", left, d)
	}
	return nil
}

func (drainingServer) StopListener(ctx context.Context, req *adminv1.StopListenerRequest) (*adminv1.StopListenerResponse, error) {
	if err := roomToDrain(ctx, req.GetDrainTimeout().AsDuration()); err != nil {
		return nil, err
	}
	return &adminv1.StopListenerResponse{Listener: &adminv1.Listener{Id: req.GetId(), State: adminv1.Listener_STATE_STOPPED}}, nil
}

func (drainingServer) RebindListener(ctx context.Context, req *adminv1.RebindListenerRequest) (*adminv1.RebindListenerResponse, error) {
	if err := roomToDrain(ctx, req.GetDrainTimeout().AsDuration()); err != nil {
		return nil, err
	}
	return &adminv1.RebindListenerResponse{Listener: &adminv1.Listener{Id: req.GetId(), Address: req.GetAddress(), State: adminv1.Listener_STATE_RUNNING}}, nil
}

func startAdmin(t *testing.T, srv adminv1.ListenerServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	adminv1.RegisterListenerServiceServer(s, srv)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// A drain longer than --timeout extends the call's deadline: the server
// sees a deadline that leaves room for the whole drain. The margins are
// seconds (the drain is not waited for), so a slow machine cannot fail it.
func TestDrainTimeoutExtendsDeadline(t *testing.T) {
	admin := startAdmin(t, drainingServer{})
	for _, args := range [][]string{
		{"listeners", "stop", "e2e", "--drain-timeout", "50s"},
		{"listeners", "rebind", "e2e", "--port", "12001", "--host", "127.0.0.1", "--drain-timeout", "50s"},
	} {
		var out, errOut bytes.Buffer
		args = append([]string{"--admin", admin, "--timeout", "10s"}, args...)
		if code := Run(context.Background(), args, nil, &out, &errOut); code != ExitOK {
			t.Errorf("udpctl %s exited %d: %s", strings.Join(args, " "), code, errOut.String())
		}
		if !strings.HasPrefix(out.String(), "ID ") {
			t.Errorf("udpctl %s printed %q, want a table", strings.Join(args, " "), out.String())
		}
	}
}

func TestDrainAllowance(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		0:                      time.Second, // udpd's default
		500 * time.Millisecond: 500 * time.Millisecond,
		time.Minute:            time.Minute,
		time.Hour:              0, // refused at once
		-time.Second:           0,
	} {
		if got := drainAllowance(d); got != want {
			t.Errorf("drainAllowance(%v) = %v, want %v", d, got, want)
		}
	}
}
