package listener

import (
	"net"
	"testing"
	"time"

	"github.com/udpd/udpd/service/ratelimit"
)

// TestSetPolicyInPlace tightens and loosens a serving listener's policy
// and checks that each datagram follows the policy in force when it was
// read, on the same socket, with the counters carried on.
func TestSetPolicyInPlace(t *testing.T) {
	l := startWith(t, Policy{})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(msg string) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort([]byte(msg), l.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what string, want func(Stats) bool) Stats {
		t.Helper()
		s := settled(t, l, want)
		if !want(s) {
			t.Fatalf("%s: stats %+v", what, s)
		}
		return s
	}
	if got, ok := exchange(t, c, l.Addr(), "open", 2*time.Second); !ok || got != "OPEN" {
		t.Fatalf("before SetPolicy: got %q, %v, want OPEN", got, ok)
	}

	// One datagram per 1000 s, burst 1, loopback included: of three, one
	// is answered.
	tight := Policy{RateLimit: ratelimit.Config{PerSecond: 0.001, Burst: 1}, LimitLoopback: true}
	l.SetPolicy(tight)
	if got := l.Policy(); got.RateLimit != tight.RateLimit || !got.LimitLoopback {
		t.Errorf("Policy() = %+v, want %+v", got, tight)
	}
	for _, m := range []string{"a", "b", "c"} {
		send(m)
	}
	wait("after tightening", func(s Stats) bool { return s.DatagramsReceived == 4 && s.DatagramsSent == 2 && s.RateLimited == 2 })
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	if n, _, err := c.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "A" {
		t.Fatalf("the one answer under the rate limit: got %q, %v, want A", buf[:n], err)
	}

	// The same rate limit with another field changed keeps its buckets:
	// the source is still out of tokens.
	same := tight
	same.MaxReplyRatio = 3
	l.SetPolicy(same)
	send("d")
	wait("same rate limit", func(s Stats) bool { return s.DatagramsReceived == 5 && s.RateLimited == 3 })

	// Loopback exempt again: answered, on the same socket.
	loose := same
	loose.LimitLoopback = false
	l.SetPolicy(loose)
	if got, ok := exchange(t, c, l.Addr(), "free", 2*time.Second); !ok || got != "FREE" {
		t.Fatalf("after loosening: got %q, %v, want FREE", got, ok)
	}
	wait("after loosening", func(s Stats) bool {
		return s.DatagramsReceived == 6 && s.DatagramsSent == 3 && s.RateLimited == 3
	})
}
