//go:build unix

package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary is also the new process: HANDOFF_TEST_CHILD says how it
// behaves.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HANDOFF_TEST_CHILD"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

type testState struct{ Greeting string }
type testFinal struct{ N int }

func child(mode string) int {
	var st testState
	p, err := Inherit(&st)
	if err != nil || p == nil {
		fmt.Fprintln(os.Stderr, "inherit:", err, p)
		return 10
	}
	switch mode {
	case "ready":
		f := p.File("sock")
		if p.File("sock") != nil || f == nil {
			return 11
		}
		pc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			return 12
		}
		if err := p.Ready(); err != nil {
			return 13
		}
		var final testFinal
		if err := p.Wait(context.Background(), &final); err != nil {
			return 14
		}
		buf := make([]byte, 64)
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return 15
		}
		pc.WriteTo(fmt.Appendf(nil, "%s %s %d", st.Greeting, buf[:n], final.N), from)
		return 0
	case "fail":
		p.Fail(errors.New("cannot bind the moon"))
		return 1
	case "exit":
		return 3
	case "hang":
		time.Sleep(time.Minute)
	}
	return 0
}

func start(t *testing.T, mode string, timeout time.Duration, files []File) (*Child, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Start(t.Context(), Options{
		Path:    self,
		Env:     append(os.Environ(), "HANDOFF_TEST_CHILD="+mode),
		Timeout: timeout,
	}, files, testState{Greeting: "hello"})
}

// TestHandOver passes a UDP socket to a new process, closes this
// process's copy, and the new process answers on it with the state and
// the final message it was given.
func TestHandOver(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	c, err := start(t, "ready", 20*time.Second, []File{{Name: "sock", Conn: pc.(*net.UDPConn)}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if c.Pid == os.Getpid() || c.Pid <= 0 {
		t.Errorf("child pid %d", c.Pid)
	}
	pc.Close() // the new process holds the socket now
	if err := c.Finish(testFinal{N: 7}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("world"))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no answer from the new process: %v", err)
	}
	if got, want := string(buf[:n]), "hello world 7"; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	if err := <-c.exits; err == nil || err.Error() != "exit status 0" {
		t.Errorf("child exit: %v, want exit status 0", err)
	}
}

func TestStartFailures(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		timeout time.Duration
		want    string
	}{
		{"fail", 20 * time.Second, "failed: cannot bind the moon"},
		{"exit", 20 * time.Second, "exited before it was ready (exit status 3)"},
		{"hang", 300 * time.Millisecond, "was not ready within 300ms"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			c, err := start(t, tc.mode, tc.timeout, nil)
			if err == nil {
				c.Finish(testFinal{})
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: %v, want ErrFailed saying %q", err, tc.want)
			}
		})
	}
	t.Run("no binary", func(t *testing.T) {
		_, err := Start(t.Context(), Options{Path: "/nonexistent/udpd", Timeout: time.Second}, nil, nil)
		if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "start /nonexistent/udpd") {
			t.Errorf("Start: %v, want ErrFailed naming the path", err)
		}
	})
}

func TestInheritWithoutParent(t *testing.T) {
	t.Setenv(EnvFD, "")
	os.Unsetenv(EnvFD)
	p, err := Inherit(&testState{})
	if p != nil || err != nil {
		t.Errorf("Inherit without %s = %v, %v; want nil, nil", EnvFD, p, err)
	}
}
