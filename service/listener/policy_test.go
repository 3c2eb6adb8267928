package listener

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/udpd/udpd/service/ratelimit"
)

// startWith is start with a policy.
func startWith(t *testing.T, p Policy) *Listener {
	t.Helper()
	l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	return l
}

// exchange sends req from c and reports whether a reply came within wait.
func exchange(t *testing.T, c *net.UDPConn, to netip.AddrPort, req string, wait time.Duration) (string, bool) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(req), to); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1024)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

func TestLoopPortsAreNeverAnswered(t *testing.T) {
	blocked, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer blocked.Close()
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var loops LoopGuard
	loops.Set([]uint16{7, uint16(blocked.LocalAddr().(*net.UDPAddr).Port)}, nil)
	l := startWith(t, Policy{Loops: &loops})

	if got, ok := exchange(t, blocked, l.Addr(), "loop?", 200*time.Millisecond); ok {
		t.Errorf("datagram from a loop port answered with %q, want no answer", got)
	}
	if got, ok := exchange(t, other, l.Addr(), "fine", 2*time.Second); !ok || got != "FINE" {
		t.Errorf("datagram from an ordinary port: got %q, %v, want FINE", got, ok)
	}
	s := settled(t, l, func(s Stats) bool { return s.DatagramsReceived == 2 && s.DatagramsSent == 1 })
	if s.LoopBlocked != 1 || s.DatagramsReceived != s.DatagramsSent+s.Dropped() {
		t.Errorf("stats %+v: want 1 loop-blocked and received == sent + dropped", s)
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name          string
		limitLoopback bool
		wantAnswered  int
	}{
		{"loopback exempt by default", false, 10},
		{"loopback limited when asked", true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := startWith(t, Policy{
				RateLimit:     ratelimit.Config{PerSecond: 0.001, Burst: 3},
				LimitLoopback: tc.limitLoopback,
			})
			c := dial(t, l)
			answered := 0
			for range 10 {
				c.Write([]byte("x"))
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				buf := make([]byte, 8)
				if _, err := c.Read(buf); err == nil {
					answered++
				}
			}
			if answered != tc.wantAnswered {
				t.Errorf("answered %d of 10, want %d", answered, tc.wantAnswered)
			}
			s := settled(t, l, func(s Stats) bool { return s.DatagramsReceived == 10 })
			if s.RateLimited != uint64(10-tc.wantAnswered) || s.DatagramsReceived != s.DatagramsSent+s.Dropped() {
				t.Errorf("stats %+v: want %d rate-limited and received == sent + dropped", s, 10-tc.wantAnswered)
			}
		})
	}
}

func TestMaxReplyRatio(t *testing.T) {
	l := startWith(t, Policy{MaxReplyRatio: 1.5})
	c := dial(t, l)
	// "ß" (2 bytes) becomes "SS" (2 bytes): ratio 1, answered.
	if got := roundTrip(t, c, []byte("ß")); string(got) != "SS" {
		t.Errorf("reply to ß = %q, want SS", got)
	}
	// "ΐ" (2 bytes) becomes 6 bytes: ratio 3, refused.
	c.Write([]byte("ΐ"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Errorf("a 3x expansion was answered (%d bytes) despite MaxReplyRatio 1.5", n)
	}
	s := settled(t, l, func(s Stats) bool { return s.RepliesTooLarge == 1 })
	if s.RepliesTooLarge != 1 {
		t.Errorf("RepliesTooLarge = %d, want 1", s.RepliesTooLarge)
	}
}

func TestLoopGuard(t *testing.T) {
	var g LoopGuard
	if g.Blocks(netip.MustParseAddr("192.0.2.1"), 7, netip.Addr{}) {
		t.Error("empty guard blocks")
	}
	g.Set([]uint16{7, 12000}, []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:40000"),
		netip.MustParseAddrPort("0.0.0.0:41000"),
		netip.MustParseAddrPort("[::1]:42000"),
		netip.MustParseAddrPort("[fe80::1%eth0]:43000"),
		netip.MustParseAddrPort("[::]:44000"),
	})
	for _, tc := range []struct {
		src, dst string // dst: the destination the listener saw, if known
		want     bool
	}{
		{"192.0.2.1:7", "", true},      // a responder port, from anywhere
		{"192.0.2.1:12000", "", true},  // udpd's default port
		{"127.0.0.1:40000", "", true},  // this daemon's own listener
		{"127.0.0.2:40000", "", false}, // a client that happens to use that port number
		{"192.0.2.1:40000", "", false}, // likewise, remote
		{"127.0.0.5:41000", "", true},  // a wildcard listener of ours, seen over loopback
		{"192.0.2.1:41000", "", false}, // a remote client on that port number
		{"[::1]:42000", "", true},      // own IPv6 listener
		{"[2001:db8::1]:42000", "", false},
		{"192.0.2.1:33333", "", false}, // an ordinary client
		// A wildcard listener answering its own destination address: the
		// spoofed source == destination that starts a self-loop.
		{"198.51.100.7:41000", "198.51.100.7", true},
		{"198.51.100.7:41000", "198.51.100.8", false},
		{"[2001:db8::7]:44000", "2001:db8::7", true},
		{"[2001:db8::7]:44000", "2001:db8::8", false},
		// A link-local listener: the kernel reports sources without zone.
		{"[fe80::1]:43000", "", true},
		{"[fe80::2]:43000", "", false},
	} {
		ap := netip.MustParseAddrPort(tc.src)
		var dst netip.Addr
		if tc.dst != "" {
			dst = netip.MustParseAddr(tc.dst)
		}
		if got := g.Blocks(ap.Addr(), ap.Port(), dst); got != tc.want {
			t.Errorf("Blocks(%s, to %s) = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
	var nilGuard *LoopGuard
	if nilGuard.Blocks(netip.MustParseAddr("192.0.2.1"), 7, netip.Addr{}) {
		t.Error("nil guard blocks")
	}
}

// TestLoopGuardHostAddresses: a wildcard listener serves every address of
// the host, so a datagram from any of them with the listener's port is
// this daemon talking to itself, whatever its destination.
func TestLoopGuardHostAddresses(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("cannot read the host's addresses: %v", err)
	}
	var g LoopGuard
	g.Set(nil, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:41000"), netip.MustParseAddrPort("[::]:41000")})
	checked := 0
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		ip = ip.Unmap()
		if !g.Blocks(ip, 41000, netip.Addr{}) {
			t.Errorf("source %v:41000 (a host address) not blocked on a wildcard listener's port", ip)
		}
		if g.Blocks(ip, 41001, netip.Addr{}) {
			t.Errorf("source %v:41001 blocked: no listener has that port", ip)
		}
		checked++
	}
	if checked == 0 {
		t.Skip("the host has no interface addresses")
	}
	if g.Blocks(netip.MustParseAddr("192.0.2.200"), 41000, netip.Addr{}) {
		t.Error("a source that is not the host's is blocked")
	}
}
