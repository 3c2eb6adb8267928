package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// listingServer answers ListListeners with one listener, once ready is
// closed.
type listingServer struct {
	adminv1.UnimplementedListenerServiceServer
	id    string
	ready <-chan struct{}
}

func (s listingServer) ListListeners(ctx context.Context, _ *adminv1.ListListenersRequest) (*adminv1.ListListenersResponse, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &adminv1.ListListenersResponse{Listeners: []*adminv1.Listener{{Id: s.id, State: adminv1.Listener_STATE_RUNNING}}}, nil
}

// startSilent accepts TCP connections and never says a word, like a
// daemon that hangs; it sends on accepted for each connection.
func startSilent(t *testing.T, accepted chan<- struct{}) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	return lis.Addr().String()
}

// Daemons are called in parallel, each under its own deadline. The daemon
// that answers does so only once both hung ones have been connected to,
// which a sequential fan-out never lets happen before its deadline. Its
// row is printed; the command fails with DEADLINE_EXCEEDED (68) and names
// the daemons that did not answer.
func TestFanOutIsParallelAndBounded(t *testing.T) {
	accepted := make(chan struct{}, 16)
	hung1, hung2 := startSilent(t, accepted), startSilent(t, accepted)
	ready := make(chan struct{})
	go func() {
		<-accepted
		<-accepted
		close(ready)
	}()
	good := startAdmin(t, listingServer{id: "alive", ready: ready})

	var out, errOut bytes.Buffer
	args := []string{"--admin", strings.Join([]string{hung1, good, hung2}, ","), "--timeout", "2s", "listeners", "list"}
	code := Run(context.Background(), args, nil, &out, &errOut)
	if code != ExitRPCBase+4 {
		t.Errorf("exit %d, want 68 (DEADLINE_EXCEEDED); stderr:\n%s", code, errOut.String())
	}
	if !regexp.MustCompile(`(?m)^DAEMON +ID `).MatchString(out.String()) ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(good)+` +alive `).MatchString(out.String()) {
		t.Errorf("stdout %q: want the answering daemon's row under a DAEMON column (it answers only when called alongside the others)", out.String())
	}
	for _, addr := range []string{hung1, hung2} {
		if !strings.Contains(errOut.String(), "udpctl: "+addr+": DeadlineExceeded") {
			t.Errorf("stderr does not say that %s timed out:\n%s", addr, errOut.String())
		}
	}
	if want := "udpctl: 2 of 3 daemons failed: " + hung1 + ", " + hung2 + "\n"; !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("stderr ends %q, want %q", errOut.String(), want)
	}
}

// The fan-out error keeps the first daemon's error reachable with
// errors.Is/As, and its exit code.
func TestFleetErrorUnwraps(t *testing.T) {
	first := usageError{errors.New("bad")}
	var err error = &fleetError{failed: []string{"a"}, of: 2, first: first}
	var u usageError
	if !errors.As(err, &u) || exitCode(err) != ExitUsage {
		t.Errorf("errors.As(usageError) %v, exitCode %d; want true, %d", errors.As(err, &u), exitCode(err), ExitUsage)
	}
	if got := errorLine(err); got != "1 of 2 daemons failed: a" {
		t.Errorf("errorLine = %q", got)
	}
}

// A failed call prints no table, for one daemon as for several.
func TestFailedListPrintsNoTable(t *testing.T) {
	for _, admin := range []string{"127.0.0.1:1", "127.0.0.1:1,127.0.0.1:2"} {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), []string{"--admin", admin, "--timeout", "5s", "listeners", "list"}, nil, &out, &errOut)
		if code != ExitRPCBase+14 || out.Len() != 0 {
			t.Errorf("--admin %s listeners list: exit %d, stdout %q; want 78 (UNAVAILABLE) and nothing", admin, code, out.String())
		}
	}
}
