package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
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
