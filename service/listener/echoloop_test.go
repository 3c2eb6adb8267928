package listener

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udpd/udpd/service/loadgen"
)

// responder is a plain socket that answers every datagram with f of it,
// like an echo service (f returns its input) or the textbook uppercase
// server; it answers at most max datagrams, and stops with the test.
func responder(t *testing.T, c *net.UDPConn, f func([]byte) []byte) *atomic.Uint64 {
	t.Helper()
	var n atomic.Uint64
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for n.Load() < 1_000_000 {
			k, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.Add(1)
			c.WriteToUDPAddrPort(f(buf[:k]), from)
		}
	}()
	return &n
}

// TestEchoLoopStops wires a listener and another responder into a loop on
// ordinary ports, with one datagram sent to the listener from the other
// responder's address: each answers the other's answer, forever, unless
// the listener notices that the peer only sends back what it just got.
// No port list or guard is configured: the rule needs none.
func TestEchoLoopStops(t *testing.T) {
	tests := []struct {
		name string
		// peer binds the other responder at addr (its port is free) and
		// returns how many datagrams it received.
		peer func(t *testing.T, addr netip.AddrPort) func() uint64
	}{
		{"another udpd listener", func(t *testing.T, addr netip.AddrPort) func() uint64 {
			b, err := Listen(context.Background(), Config{Addr: addr, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			go b.Serve()
			t.Cleanup(func() { b.Close() })
			return func() uint64 { return b.Stats().DatagramsReceived }
		}},
		{"an echo service", func(t *testing.T, addr netip.AddrPort) func() uint64 {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
			if err != nil {
				t.Fatal(err)
			}
			n := responder(t, c, func(b []byte) []byte { return b })
			return func() uint64 { return n.Load() }
		}},
		{"the textbook uppercase server", func(t *testing.T, addr netip.AddrPort) func() uint64 {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
			if err != nil {
				t.Fatal(err)
			}
			n := responder(t, c, bytes.ToUpper)
			return func() uint64 { return n.Load() }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			// The spoofed first datagram: sent from the address the peer
			// will have, before the peer binds it, to A, which answers
			// once it serves.
			from, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			peerAddr := from.LocalAddr().(*net.UDPAddr).AddrPort()
			if _, err := from.WriteToUDPAddrPort([]byte("ping"), a.Addr()); err != nil {
				t.Fatal(err)
			}
			from.Close()
			peerReceived := tc.peer(t, peerAddr)
			go a.Serve()

			// Wait until A blocks the loop, or until the loop has clearly
			// run away.
			const runaway = 20_000
			var s Stats
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if s = a.Stats(); s.LoopBlocked > 0 || s.DatagramsReceived > runaway {
					break
				}
			}
			if s.LoopBlocked == 0 {
				t.Fatalf("the loop was not stopped: A received %d datagrams and loop-blocked none (%+v)", s.DatagramsReceived, s)
			}
			// One datagram circulates: A answers the first and the first
			// echoLimit-1 echoes, and refuses the echoLimit-th.
			if want := uint64(echoLimit + 1); s.DatagramsReceived != want || s.DatagramsSent != want-1 || s.LoopBlocked != 1 {
				t.Errorf("A: received %d, sent %d, loop-blocked %d; want %d, %d, 1",
					s.DatagramsReceived, s.DatagramsSent, s.LoopBlocked, want, want-1)
			}
			// The loop stays stopped: nothing more arrives.
			before := peerReceived()
			time.Sleep(100 * time.Millisecond)
			if after, s2 := peerReceived(), a.Stats(); after != before || s2.DatagramsReceived != s.DatagramsReceived {
				t.Errorf("still looping: the peer received %d then %d, A %d then %d", before, after, s.DatagramsReceived, s2.DatagramsReceived)
			}
			// A still answers everyone else.
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(a.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := roundTrip(t, c, []byte("still serving")); string(got) != "STILL SERVING" {
				t.Errorf("reply after the loop = %q, want STILL SERVING", got)
			}
		})
	}
}

// TestClientsAreNeverLoopBlocked sends what real clients send and checks
// that every datagram is answered and none counts as a loop: the textbook
// client (a socket per line), `udpctl send` reading lines from one socket
// (the same already upper-case line typed twice, and repeated lines among
// others), and `udpctl bench` with its default payloads.
func TestClientsAreNeverLoopBlocked(t *testing.T) {
	l := start(t, "127.0.0.1:0", 2)
	answered := 0

	// The textbook client: one socket, one line, closed.
	for i := range 50 {
		line := []string{"hello", "HELLO", "HELLO", "Straße"}[i%4]
		c := dial(t, l)
		if got := roundTrip(t, c, []byte(line)); string(got) != strings.ReplaceAll(strings.ToUpper(line), "ß", "SS") {
			t.Fatalf("textbook client: reply to %q = %q", line, got)
		}
		c.Close()
		answered++
	}

	// udpctl send's line mode: one socket for all lines.
	c := dial(t, l)
	lines := []string{"HELLO", "HELLO", "hello", "OK", "OK", "done", "DONE", "DONE", "DONE"}
	for range 5 {
		lines = append(lines, "OK", "status?", "OK", "OK")
	}
	for _, line := range lines {
		if got := roundTrip(t, c, []byte(line)); string(got) != strings.ToUpper(line) {
			t.Fatalf("line mode: reply to %q = %q", line, got)
		}
		answered++
	}

	// udpctl bench with its defaults (bounded in count and time).
	cfg := loadgen.Config{Server: l.Addr(), Count: 20_000, Duration: 5 * time.Second, Flows: 8, Window: 16, Size: 64}
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mismatched != 0 || res.Received == 0 {
		t.Errorf("bench: %+v, want replies and no mismatch", res)
	}

	want := uint64(answered) + res.Sent
	s := settled(t, l, func(s Stats) bool { return s.DatagramsReceived >= want })
	if s.LoopBlocked != 0 {
		t.Errorf("clients were loop-blocked: %d of %d datagrams (%+v)", s.LoopBlocked, s.DatagramsReceived, s)
	}
	if s.DatagramsReceived != s.DatagramsSent+s.Dropped() {
		t.Errorf("stats %+v: want received == sent + dropped", s)
	}
}

// BenchmarkEchoGuard is the loop detector's cost per datagram (check the
// request, remember the reply) for bench-like traffic: many peers,
// requests that are never echoes.
func BenchmarkEchoGuard(b *testing.B) {
	for _, size := range []int{64, 1400, 65507} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			var g echoGuard
			req := bytes.Repeat([]byte("a"), size)
			reply := bytes.ToUpper(req)
			peers := make([]netip.AddrPort, 64)
			for i := range peers {
				peers[i] = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(40000+i))
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := g.peer(peers[i%len(peers)])
				if g.refuse(p, req, int64(i)) {
					b.Fatal("refused")
				}
				g.sent(p, reply, int64(i))
				i++
			}
		})
	}
}
