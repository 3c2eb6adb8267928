//go:build unix

package manager_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

// spoofFrom returns a socket bound to addr although a listener holds it:
// it joins the listener's SO_REUSEPORT group (same user), which is as good
// as spoofing that source address on loopback.
func spoofFrom(t *testing.T, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr.String())
	if err != nil {
		t.Fatalf("join %v: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// TestTwoDaemonsDoNotLoop points two responders at each other with one
// datagram whose source is the other's listener, the spoof that starts a
// loop between echo servers. Neither may answer it.
func TestTwoDaemonsDoNotLoop(t *testing.T) {
	tests := []struct {
		name string
		// setup returns A (the manager that gets the spoofed datagram and
		// the listener it arrives at) and B's listener address.
		setup func(t *testing.T) (*manager.Manager, manager.Listener, netip.AddrPort)
	}{
		{"another udpd on the default port", func(t *testing.T) (*manager.Manager, manager.Listener, netip.AddrPort) {
			mb := newManager(t, manager.Options{})
			b, err := mb.Start(ctx(t), manager.Spec{ID: "b", Address: "127.0.0.2:12000"}, "")
			if err != nil {
				t.Skipf("cannot bind 127.0.0.2:12000 here: %v", err)
			}
			ma := newManager(t, manager.Options{})
			return ma, start(t, ma, manager.Spec{ID: "a", Address: "127.0.0.1:0"}), b.BoundAddress
		}},
		{"another responder on a --loop-ports port", func(t *testing.T) (*manager.Manager, manager.Listener, netip.AddrPort) {
			mb := newManager(t, manager.Options{})
			b := start(t, mb, manager.Spec{ID: "b", Address: "127.0.0.2:0"})
			ma := newManager(t, manager.Options{LoopPorts: []uint16{b.BoundAddress.Port()}})
			return ma, start(t, ma, manager.Spec{ID: "a", Address: "127.0.0.1:0"}), b.BoundAddress
		}},
		{"this daemon's own other listener", func(t *testing.T) (*manager.Manager, manager.Listener, netip.AddrPort) {
			ma := newManager(t, manager.Options{})
			b := start(t, ma, manager.Spec{ID: "b", Address: "127.0.0.2:0"})
			return ma, start(t, ma, manager.Spec{ID: "a", Address: "127.0.0.1:0"}), b.BoundAddress
		}},
		{"this daemon's own other listener, both restored", func(t *testing.T) (*manager.Manager, manager.Listener, netip.AddrPort) {
			ma := newManager(t, manager.Options{})
			ls, err := ma.Restore(ctx(t), []manager.Spec{{ID: "a", Address: "127.0.0.1:0"}, {ID: "b", Address: "127.0.0.2:0"}})
			if err != nil {
				t.Fatal(err)
			}
			return ma, ls[0], ls[1].BoundAddress
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ma, a, from := tc.setup(t)
			spoof := spoofFrom(t, from)
			if _, err := spoof.WriteToUDPAddrPort([]byte("ping"), a.BoundAddress); err != nil {
				t.Fatal(err)
			}
			spoof.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if n, _, err := spoof.ReadFromUDPAddrPort(make([]byte, 64)); err == nil {
				t.Errorf("A answered the spoofed datagram (%d bytes)", n)
			}
			sa, _ := ma.Get("a")
			if sa.Stats.DatagramsReceived != 1 || sa.Stats.LoopBlocked != 1 || sa.Stats.DatagramsSent != 0 {
				t.Errorf("A: %+v, want the one datagram received and loop-blocked", sa.Stats)
			}
			// A real client still gets its answer.
			mustEcho(t, a.BoundAddress, "still serving")
		})
	}
}

// TestClientOnAListenersPortNumberIsAnswered: only the daemon's own
// addresses are blocked, not every source that uses one of its port
// numbers; a client's ephemeral port may well equal a listener's.
func TestClientOnAListenersPortNumberIsAnswered(t *testing.T) {
	m := newManager(t, manager.Options{})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: int(a.BoundAddress.Port())})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2:%d: %v", a.BoundAddress.Port(), err)
	}
	defer c.Close()
	c.WriteToUDPAddrPort([]byte("same port number"), a.BoundAddress)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "SAME PORT NUMBER" {
		t.Errorf("client on 127.0.0.2:%d: got %q, %v, want the uppercase", a.BoundAddress.Port(), buf[:n], err)
	}
}

// TestLoopPortsOption: another responder on a port of the operator's
// choosing (--loop-ports) is never answered either.
func TestLoopPortsOption(t *testing.T) {
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	port := uint16(other.LocalAddr().(*net.UDPAddr).Port)
	m := newManager(t, manager.Options{LoopPorts: []uint16{port}})
	l := start(t, m, manager.Spec{ID: "x", Address: "127.0.0.1:0"})
	other.WriteToUDPAddrPort([]byte("from a responder"), l.BoundAddress)
	other.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := other.ReadFromUDPAddrPort(make([]byte, 64)); err == nil {
		t.Errorf("answered a datagram from loop port %d (%d bytes)", port, n)
	}
	if got, _ := m.Get("x"); got.Stats.LoopBlocked != 1 {
		t.Errorf("LoopBlocked = %d, want 1", got.Stats.LoopBlocked)
	}
	if !slices.Contains(listener.ClassicResponderPorts, 7) {
		t.Error("echo (7) is not a classic responder port")
	}
}
