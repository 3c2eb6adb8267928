package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// start binds a listener on addr ("127.0.0.1:0", "[::1]:0"), serves it, and
// shuts it down at the end of the test, checking that Serve returned nil.
func start(t testing.TB, addr string, workers int) *Listener {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	l, err := Listen(context.Background(), Config{Addr: ap, Workers: workers})
	if err != nil {
		if ap.Addr().Is6() {
			t.Skipf("IPv6 loopback not available: %v", err)
		}
		t.Fatalf("Listen(%s): %v", addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Shutdown")
		}
	})
	return l
}

func dial(t testing.TB, l *Listener) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
	if err != nil {
		t.Fatalf("dial %v: %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	return c
}

// roundTrip sends req and returns the reply, failing after a deadline.
func roundTrip(t testing.TB, c *net.UDPConn, req []byte) []byte {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatalf("write %d bytes: %v", len(req), err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1<<17)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("read reply to %d bytes: %v", len(req), err)
	}
	return buf[:n]
}

// settled waits (boundedly) until the listener's counters satisfy ok: a
// worker adds a batch's counts just after sending its replies, so a client
// can see a reply an instant before the counters do.
func settled(t *testing.T, l *Listener, ok func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if s = l.Stats(); ok(s) {
			break
		}
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("abcdefgh"), MaxPayloadIPv4/8+1)[:MaxPayloadIPv4]
	bigMixed := []byte(strings.Repeat("straße ÿ ", MaxPayloadIPv4/12))
	tests := []struct {
		name string
		req  string
		want string
	}{
		{"ascii", "hello, world", "HELLO, WORLD"},
		{"empty", "", ""},
		{"special casing", "straße ﬁ \u0390", "STRASSE FI \u0399\u0308\u0301"},
		{"invalid utf-8", "ab\xffcd\xc3", "AB\xffCD\xc3"},
		{"largest ipv4 payload", string(big), strings.ToUpper(string(big))},
		{"large mixed", string(bigMixed), strings.ReplaceAll(strings.ToUpper(string(bigMixed)), "ß", "SS")},
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			l := start(t, addr, 2)
			c := dial(t, l)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got := roundTrip(t, c, []byte(tc.req))
					if string(got) != tc.want {
						t.Errorf("reply to %.40q (%d bytes) = %.40q (%d bytes), want %.40q (%d bytes)",
							tc.req, len(tc.req), got, len(got), tc.want, len(tc.want))
					}
				})
			}
		})
	}
}

func TestReplyTooLargeIsDroppedAndCounted(t *testing.T) {
	l := start(t, "127.0.0.1:0", 1)
	c := dial(t, l)
	// "ΐ" is 2 bytes and uppercases to 6: 30,000 of them fit a datagram
	// but their uppercase (180,000 bytes) fits none.
	huge := []byte(strings.Repeat("ΐ", 30000))
	if _, err := c.Write(huge); err != nil {
		t.Fatal(err)
	}
	// The next datagram is still answered: the listener did not wedge.
	if got := roundTrip(t, c, []byte("still here")); string(got) != "STILL HERE" {
		t.Fatalf("reply after oversized expansion = %q, want %q", got, "STILL HERE")
	}
	s := settled(t, l, func(s Stats) bool { return s.DatagramsReceived == 2 })
	if s.RepliesTooLarge != 1 || s.DatagramsReceived != 2 || s.DatagramsSent != 1 {
		t.Errorf("stats = %+v, want 2 received, 1 sent, 1 too large", s)
	}
	if s.BytesReceived != uint64(len(huge)+10) || s.BytesSent != 10 {
		t.Errorf("bytes in/out = %d/%d, want %d/10", s.BytesReceived, s.BytesSent, len(huge)+10)
	}
}

func TestConcurrentSenders(t *testing.T) {
	l := start(t, "127.0.0.1:0", 2)
	const senders, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 256)
			for i := range each {
				req := fmt.Sprintf("sender %d message %d ß", s, i)
				want := strings.ReplaceAll(strings.ToUpper(req), "ß", "SS")
				var got string
				// UDP may lose a datagram even on loopback: retry a few times.
				for try := 0; try < 5 && got != want; try++ {
					c.Write([]byte(req))
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					n, err := c.Read(buf)
					if err != nil {
						continue
					}
					got = string(buf[:n])
				}
				if got != want {
					errs <- fmt.Errorf("sender %d: reply %q, want %q", s, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := settled(t, l, func(s Stats) bool { return s.DatagramsSent >= senders*each })
	if s.DatagramsSent < senders*each || s.DatagramsReceived != s.DatagramsSent+s.Dropped() {
		t.Errorf("stats = %+v, want >= %d sent and received == sent + dropped", s, senders*each)
	}
}

func TestAddressInUse(t *testing.T) {
	l := start(t, "127.0.0.1:0", 2)
	_, err := Listen(context.Background(), Config{Addr: l.Addr(), Workers: 1})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen on %v: err = %v, want EADDRINUSE", l.Addr(), err)
	}
	// A plain socket (the textbook server) holding the port is seen too.
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = Listen(context.Background(), Config{Addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a port a plain socket holds: err = %v, want EADDRINUSE", err)
	}
}

// TestShutdownAnswersQueued holds datagrams in the socket's queue before
// the listener serves, shuts it down, and checks every one is answered.
func TestShutdownAnswersQueued(t *testing.T) {
	l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, l)
	const queued = 100
	for i := range queued {
		if _, err := fmt.Fprintf(c, "q%03d", i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond) // let loopback deliver them all to the queue
	// Shut down first (drain mode), then serve: the worker sees the drain
	// at once and must still answer everything queued.
	served := make(chan error, 1)
	l.draining.Store(true)
	l.drainUntil.Store(time.Now().Add(2 * time.Second).UnixNano())
	for _, w := range l.workers {
		w.wake()
	}
	go func() { served <- l.Serve() }()
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	l.Close()
	got := 0
	buf := make([]byte, 64)
	for {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		if !bytes.HasPrefix(buf[:n], []byte("Q")) {
			t.Errorf("reply %q, want an uppercase Q…", buf[:n])
		}
		got++
	}
	if got != queued {
		t.Errorf("answered %d of %d queued datagrams", got, queued)
	}
}

func TestShutdownIdleReturnsPromptly(t *testing.T) {
	l := start(t, "127.0.0.1:0", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Shutdown of an idle listener waited for its whole deadline")
	}
}

// TestAllocs proves the per-datagram path allocates nothing in steady
// state: one loopback round trip (client and server) costs zero heap
// allocations.
func TestAllocs(t *testing.T) {
	for _, tc := range []struct{ name, bind, to, req string }{
		{"ascii", "127.0.0.1:0", "127.0.0.1", "the quick brown fox jumps over the lazy dog"},
		{"utf8", "127.0.0.1:0", "127.0.0.1", "straße ünïcödé ΐ"},
		// A wildcard listener reads each destination and answers from it.
		{"wildcard", "0.0.0.0:0", "127.0.0.2", "the quick brown fox jumps over the lazy dog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if portableWorker && tc.name == "wildcard" {
				t.Skip("the portable worker leaves the reply's source address to the kernel")
			}
			l := start(t, tc.bind, 1)
			to := netip.AddrPortFrom(netip.MustParseAddr(tc.to), l.Addr().Port())
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := []byte(tc.req)
			buf := make([]byte, 256)
			roundTrip(t, c, req) // warm up: the batch buffers grow once
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			allocs := testing.AllocsPerRun(200, func() {
				c.Write(req)
				if _, err := c.Read(buf); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("allocations per round trip = %v, want 0", allocs)
			}
		})
	}
}

// TestPortZeroNeverSharesAPort binds many port-0 listeners at once: each
// must get a port of its own. With SO_REUSEPORT set before the kernel
// picks the port, some would join another group's port.
func TestPortZeroNeverSharesAPort(t *testing.T) {
	const count = 600
	seen := make(map[uint16]bool, count)
	var ls []*Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range count {
		l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		if p := l.Addr().Port(); seen[p] {
			t.Fatalf("two port-0 listeners got port %d", p)
		}
		seen[l.Addr().Port()] = true
	}
}

// TestIdleListenerHoldsNoBuffers: receive buffers (64 KiB each) come with
// the first datagram, so idle listeners cost no receive memory.
func TestIdleListenerHoldsNoBuffers(t *testing.T) {
	if portableWorker {
		t.Skip("the portable worker makes its one buffer when it starts serving")
	}
	for _, traffic := range []bool{false, true} {
		l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		go l.Serve()
		time.Sleep(50 * time.Millisecond) // the worker reaches its first read
		if traffic {
			if got := roundTrip(t, dial(t, l), []byte("wake")); string(got) != "WAKE" {
				t.Fatalf("first datagram answered %q, want WAKE", got)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		l.Shutdown(ctx) // the worker has returned: its fields are safe to read
		cancel()
		if got := len(l.workers[0].bufs); (got > 0) != traffic {
			t.Errorf("after traffic=%v the worker holds %d receive buffers", traffic, got)
		}
	}
}
