//go:build unix

package listener

import (
	"context"
	"fmt"
	"github.com/udpd/udpd/service/internal/udptest"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// replies reads replies on c until none comes for a while and returns
// how many there were; every one must be an uppercase "Q".
func replies(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	got := 0
	buf := make([]byte, 64)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return got
		}
		if !strings.HasPrefix(string(buf[:n]), "Q") {
			t.Errorf("reply %q, want an uppercase Q…", buf[:n])
		}
		got++
	}
}

// TestReleaseHandsQueuedDatagramsToTheNextListener is a hand-over inside
// one process: a second Listener is built from the first one's sockets,
// the first is released, datagrams sent while nobody reads stay queued,
// and the second answers every one of them. Each side counts only what it
// answered.
func TestReleaseHandsQueuedDatagramsToTheNextListener(t *testing.T) {
	old, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	oldServed := make(chan error, 1)
	go func() { oldServed <- old.Serve() }()
	c := dial(t, old)
	const before, during = 20, 30
	for i := range before {
		if got := string(roundTrip(t, c, fmt.Appendf(nil, "b%03d", i))); got != fmt.Sprintf("B%03d", i) {
			t.Fatalf("reply %q", got)
		}
	}

	next, err := FromFiles(udptest.DupFiles(t, old.Sockets()), Config{})
	if err != nil {
		t.Fatalf("FromFiles: %v", err)
	}
	if next.Addr() != old.Addr() || next.Workers() != old.Workers() {
		t.Fatalf("FromFiles: addr %v workers %d, want %v and %d", next.Addr(), next.Workers(), old.Addr(), old.Workers())
	}
	if err := old.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := <-oldServed; err != nil {
		t.Fatalf("Serve after Release = %v, want nil", err)
	}
	// Nobody reads now; the sockets are still open (next holds them), so
	// nothing is refused: the datagrams wait in the queues.
	for i := range during {
		if _, err := fmt.Fprintf(c, "q%03d", i); err != nil {
			t.Fatalf("send while handing over: %v", err)
		}
	}
	nextServed := make(chan error, 1)
	go func() { nextServed <- next.Serve() }()
	if got := replies(t, c); got != during {
		t.Errorf("answered %d of the %d datagrams sent during the hand-over", got, during)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := next.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-nextServed; err != nil {
		t.Fatal(err)
	}
	if s := old.Stats(); s.DatagramsReceived != before || s.DatagramsSent != before {
		t.Errorf("old listener counted received %d sent %d, want %d each", s.DatagramsReceived, s.DatagramsSent, before)
	}
	if s := next.Stats(); s.DatagramsReceived != during || s.DatagramsSent != during {
		t.Errorf("new listener counted received %d sent %d, want %d each", s.DatagramsReceived, s.DatagramsSent, during)
	}
}

func TestFromFilesRefusesWhatIsNotOneUDPAddress(t *testing.T) {
	a := start(t, "127.0.0.1:0", 1)
	b := start(t, "127.0.0.1:0", 1)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tf, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	ug, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: t.TempDir() + "/u.sock", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ug.Close()
	uf, err := ug.File()
	if err != nil {
		t.Fatal(err)
	}
	defer uf.Close()
	unbound, err := os.CreateTemp(t.TempDir(), "notasocket")
	if err != nil {
		t.Fatal(err)
	}
	defer unbound.Close()
	for _, tc := range []struct {
		name  string
		files []*os.File
		want  string
	}{
		{"none", nil, "no socket"},
		{"two addresses", append(udptest.DupFiles(t, a.Sockets()), udptest.DupFiles(t, b.Sockets())...), "the other sockets to"},
		{"tcp", []*os.File{tf}, "listen from"},
		{"unix datagram", []*os.File{uf}, "not UDP"},
		{"regular file", []*os.File{unbound}, "listen from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := FromFiles(tc.files, Config{})
			if err == nil {
				l.Close()
				t.Fatalf("FromFiles: no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("FromFiles: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestReleaseOfAnUnservedListener returns at once and reads nothing.
func TestReleaseOfAnUnservedListener(t *testing.T) {
	l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	keep := udptest.DupFiles(t, l.Sockets()) // another holder, as after a hand-over
	c := dial(t, l)
	if _, err := c.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.DatagramsReceived != 0 {
		t.Errorf("released listener read %d datagrams, want 0", s.DatagramsReceived)
	}
	next, err := FromFiles(keep, Config{})
	if err != nil {
		t.Fatal(err)
	}
	go next.Serve()
	defer next.Close()
	if got := replies(t, c); got != 1 {
		t.Errorf("the next listener answered %d datagrams, want the 1 left queued", got)
	}
}
