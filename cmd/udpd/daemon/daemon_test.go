package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testConfig is a daemon on loopback ports of the kernel's choosing with
// its state in a fresh directory.
func testConfig(t *testing.T, extra ...string) *config {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state", filepath.Join(t.TempDir(), "state.json")}, extra...)
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// echo sends msg to addr and returns the reply.
func echo(t *testing.T, addr string, msg string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply from %s: %v", addr, err)
	}
	return string(buf[:n])
}

func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func TestStartServesThenShutdownReleases(t *testing.T) {
	cfg := testConfig(t)
	d, err := start(t.Context(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.started) != 1 {
		t.Fatalf("started %d listeners, want 1", len(d.started))
	}
	udp := d.started[0].BoundAddress.String()
	if got := echo(t, udp, "hello"); got != "HELLO" {
		t.Errorf("reply %q, want %q", got, "HELLO")
	}
	hc := healthClient(t, d.adminAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: got %v, %v; want SERVING", r, err)
	}

	if err := d.shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if c, err := net.DialTimeout("tcp", d.adminAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("admin address %s still accepts connections after shutdown", d.adminAddr)
	}
	// The state file's lock is free: another daemon can take it.
	d2, err := start(t.Context(), cfg, quiet())
	if err != nil {
		t.Fatalf("start after shutdown: %v", err)
	}
	if err := d2.shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestFailedStartReleasesWhatItTook(t *testing.T) {
	cfg := testConfig(t, "--ready-file", filepath.Join(t.TempDir(), "missing", "ready"))
	if _, err := start(t.Context(), cfg, quiet()); err == nil {
		t.Fatal("start with an unwritable ready file succeeded")
	}
	// The lock on the state file went with it.
	cfg.readyFile = ""
	d, err := start(t.Context(), cfg, quiet())
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}
	if err := d.shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownOrder checks the documented order on a real daemon: when the
// listeners start draining, health already says NOT_SERVING and the
// listeners still answer; the drain gets a live context with the
// --shutdown-timeout deadline even though shutdown's own context is done
// (as after a signal); when the admin server stops, the listeners are
// closed, and it gets what is left of the deadline.
func TestShutdownOrder(t *testing.T) {
	const timeout = 3 * time.Second
	cfg := testConfig(t, "--shutdown-timeout", timeout.String())
	d, err := start(t.Context(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	udp := d.started[0].BoundAddress.String()
	hc := healthClient(t, d.adminAddr)
	real := d.steps
	var order []string
	began := time.Now()
	d.steps.notServing = func() {
		order = append(order, "not serving")
		real.notServing()
	}
	d.steps.drain = func(ctx context.Context) error {
		order = append(order, "drain")
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if r, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health when the drain begins: got %v, %v; want NOT_SERVING", r, err)
		}
		if got := echo(t, udp, "still"); got != "STILL" {
			t.Errorf("a listener about to drain answered %q, want STILL", got)
		}
		if ctx.Err() != nil {
			t.Errorf("the drain got a done context: %v", ctx.Err())
		}
		if dl, ok := ctx.Deadline(); !ok || dl.Before(began.Add(timeout)) || dl.After(time.Now().Add(timeout)) {
			t.Errorf("the drain's deadline: got %v (set %v), want --shutdown-timeout (%v) from the start of shutdown", time.Until(dl), ok, timeout)
		}
		return real.drain(ctx)
	}
	d.steps.stop = func(grace time.Duration) {
		order = append(order, "stop")
		if err := noReply(udp); err != nil {
			t.Errorf("when the admin server stops, the listeners must be closed: %v", err)
		}
		if grace <= 0 || grace > timeout {
			t.Errorf("GracefulStop got %v, want what is left of %v", grace, timeout)
		}
		real.stop(grace)
	}
	signalled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.shutdown(signalled); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if want := []string{"not serving", "drain", "stop"}; !slices.Equal(order, want) {
		t.Errorf("shutdown steps: got %q, want %q", order, want)
	}
}

// TestShutdownDelay checks --shutdown-delay: after health reports
// NOT_SERVING, the listeners go on answering for the delay, and only then
// does the drain begin, with the whole --shutdown-timeout still before it.
// (A second signal that cuts the delay short is in shutdown.txtar.)
func TestShutdownDelay(t *testing.T) {
	const delay, timeout = 2 * time.Second, 3 * time.Second
	cfg := testConfig(t, "--shutdown-delay", delay.String(), "--shutdown-timeout", timeout.String())
	d, err := start(t.Context(), cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	udp := d.started[0].BoundAddress.String()
	hc := healthClient(t, d.adminAddr)
	real := d.steps
	var notServingAt time.Time
	during := make(chan error, 1) // what a client saw during the delay
	d.steps.notServing = func() {
		real.notServing()
		notServingAt = time.Now()
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), delay/2)
			defer cancel()
			r, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
			switch {
			case err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING:
				during <- fmt.Errorf("health: got %v, %v; want NOT_SERVING", r, err)
			default:
				during <- echoErr(udp, "during the delay", "DURING THE DELAY")
			}
		}()
	}
	d.steps.drain = func(ctx context.Context) error {
		if waited := time.Since(notServingAt); waited < delay {
			t.Errorf("the drain began %v after NOT_SERVING, want the delay (%v) first", waited, delay)
		}
		select {
		case err := <-during:
			if err != nil {
				t.Errorf("during the delay: %v", err)
			}
		default:
			t.Errorf("the client's checks had not finished when the drain began (%v after NOT_SERVING)", time.Since(notServingAt))
		}
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < timeout-time.Second {
			t.Errorf("the drain's deadline: %v from now (set %v), want --shutdown-timeout (%v) after the delay", time.Until(dl), ok, timeout)
		}
		return real.drain(ctx)
	}
	signalled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.shutdown(signalled); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// echoErr sends msg to addr and says what is wrong with the reply, if
// anything; for goroutines other than the test's.
func echoErr(addr, msg, want string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("no reply: %w", err)
	}
	if string(buf[:n]) != want {
		return fmt.Errorf("reply %q, want %q", buf[:n], want)
	}
	return nil
}

// noReply checks that a datagram to addr is refused (nothing listens
// there: the kernel answers with ICMP port unreachable at once).
func noReply(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("anyone")); err != nil {
		return nil // refused already
	}
	n, err := c.Read(make([]byte, 64))
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("%s still answers (%d bytes)", addr, n)
	}
	return fmt.Errorf("%s: want connection refused, got %v", addr, err)
}
