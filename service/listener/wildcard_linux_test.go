//go:build linux && !udpd_portable

package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/udpd/udpd/service/internal/netns"
)

// askFrom sends msg to addr from a socket on local (if valid) connected
// to addr, which takes only
// datagrams from addr: a reply from any other source address is dropped
// by the kernel and the exchange fails.
func askFrom(t *testing.T, local netip.Addr, addr netip.AddrPort, msg string) (string, error) {
	t.Helper()
	var laddr *net.UDPAddr
	if local.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// TestWildcardAnswersFromAskedAddress: a listener on 0.0.0.0 answers a
// request sent to 127.0.0.2 from 127.0.0.2, not from the address the
// kernel would choose (127.0.0.1), so a connected client gets it.
func TestWildcardAnswersFromAskedAddress(t *testing.T) {
	l := start(t, "0.0.0.0:0", 2)
	for _, to := range []string{"127.0.0.2", "127.0.0.1", "127.1.2.3"} {
		addr := netip.AddrPortFrom(netip.MustParseAddr(to), l.Addr().Port())
		got, err := askFrom(t, netip.Addr{}, addr, "who answers?")
		if err != nil || got != "WHO ANSWERS?" {
			t.Errorf("request to %v: got %q, %v, want the uppercase from %v", addr, got, err, addr)
		}
	}
}

// TestWildcardAnswersFromAskedAddressIPv6 is the same on [::], in a network
// namespace with two addresses of 2001:db8::/32 on its loopback.
func TestWildcardAnswersFromAskedAddressIPv6(t *testing.T) {
	ns := netns.New(t)
	ns.AddAddr(t, "lo", "2001:db8::1/128")
	ns.AddAddr(t, "lo", "2001:db8::2/128")
	ns.Do(t, func() {
		l := start(t, "[::]:0", 2)
		// From one address of the host to another: the kernel would
		// answer from the client's own address.
		for _, tc := range []struct{ from, to string }{
			{"2001:db8::1", "2001:db8::2"},
			{"2001:db8::2", "2001:db8::1"},
			{"2001:db8::1", "::1"},
			{"::1", "2001:db8::1"},
		} {
			addr := netip.AddrPortFrom(netip.MustParseAddr(tc.to), l.Addr().Port())
			got, err := askFrom(t, netip.MustParseAddr(tc.from), addr, "who answers?")
			if err != nil || got != "WHO ANSWERS?" {
				t.Errorf("request from %s to %v: got %q, %v, want the uppercase from %v", tc.from, addr, got, err, addr)
			}
		}
	})
}

// TestSpoofedSelfLoop is the attack itself, with real packets: a raw
// socket sends one datagram whose source is the destination (the host's
// own address and the listener's port) to a listener on a wildcard or
// link-local address, in a namespace of the test's own. A listener that
// answers it answers itself, forever. With the daemon's loop guard (its
// own listener addresses, as the manager sets them) it is refused at
// once; the test counts what arrives in a bounded window.
func TestSpoofedSelfLoop(t *testing.T) {
	tests := []struct {
		name   string
		bind   string // the listener's address, port 0
		self   string // the spoofed source and the destination
		linkLo bool   // self is link-local on a veth of the namespace
	}{
		{"IPv4 wildcard", "0.0.0.0:0", "192.0.2.1", false},
		{"IPv6 wildcard", "[::]:0", "2001:db8::1", false},
		{"IPv6 link-local", "[fe80::1%%%s]:0", "fe80::1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := netns.New(t)
			bind, zone := tc.bind, 0
			self := netip.MustParseAddr(tc.self)
			spoofNS := ns // where the raw socket is
			if tc.linkLo {
				// The spoofed datagram comes over a veth from a second
				// namespace, as from a neighbour on the link.
				spoofNS = netns.New(t)
				ns.IP(t, "link", "add", "udpdva", "type", "veth", "peer", "name", "udpdvb")
				ns.IP(t, "link", "set", "udpdvb", "netns", spoofNS.Name)
				ns.IP(t, "link", "set", "udpdva", "up")
				spoofNS.IP(t, "link", "set", "udpdvb", "up")
				ns.AddAddr(t, "udpdva", "fe80::1/64")
				spoofNS.AddAddr(t, "udpdvb", "fe80::2/64")
				bind = fmt.Sprintf(tc.bind, "udpdva")
			} else {
				ns.AddAddr(t, "lo", netip.PrefixFrom(self, self.BitLen()).String())
			}
			var l *Listener
			var spoof *netns.Spoofer
			var guard LoopGuard
			ns.Do(t, func() {
				var err error
				l, err = Listen(context.Background(), Config{Addr: netip.MustParseAddrPort(bind), Workers: 1, Policy: Policy{Loops: &guard}})
				if err != nil {
					t.Fatal(err)
				}
				guard.Set(ClassicResponderPorts, []netip.AddrPort{l.Addr()})
			})
			spoofNS.Do(t, func() {
				if tc.linkLo {
					ifi, err := net.InterfaceByName("udpdvb")
					if err != nil {
						t.Fatal(err)
					}
					zone = ifi.Index
				}
				spoof = netns.NewSpoofer(t, !self.Is4())
			})
			t.Cleanup(func() { l.Close() })
			go l.Serve()
			to := netip.AddrPortFrom(self, l.Addr().Port())
			if err := spoof.Send(to, to, zone, []byte("loop")); err != nil {
				t.Fatalf("spoof %v -> %v: %v", to, to, err)
			}
			// The first datagram arrives; then, without the guard, the
			// listener's answers to itself would follow.
			s := settled(t, l, func(s Stats) bool { return s.DatagramsReceived >= 1 })
			if s.DatagramsReceived == 0 {
				t.Fatalf("the spoofed datagram never arrived: %+v", s)
			}
			time.Sleep(200 * time.Millisecond) // the window in which a loop would run
			s = l.Stats()
			if s.DatagramsReceived != 1 || s.LoopBlocked != 1 || s.DatagramsSent != 0 {
				t.Errorf("in 200ms after one spoofed datagram from itself: received %d, sent %d, loop-blocked %d; want 1, 0, 1",
					s.DatagramsReceived, s.DatagramsSent, s.LoopBlocked)
			}
		})
	}
}
