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

// TestTwoDaemonsDoNotLoop points two managers (two daemons) at each other
// with one datagram whose source is the other's listener, the spoof that
// starts a loop between echo servers. Neither may answer it.
func TestTwoDaemonsDoNotLoop(t *testing.T) {
	tests := []struct {
		name string
		// second returns B's address and options given A's bound address.
		second func(a netip.AddrPort) (string, manager.Options)
	}{
		{"same port on another address", func(a netip.AddrPort) (string, manager.Options) {
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), a.Port()).String(), manager.Options{}
		}},
		{"udpd's default port", func(netip.AddrPort) (string, manager.Options) {
			return "127.0.0.2:12000", manager.Options{}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ma := newManager(t, manager.Options{})
			a := start(t, ma, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
			addrB, optsB := tc.second(a.BoundAddress)
			mb := newManager(t, optsB)
			b, err := mb.Start(ctx(t), manager.Spec{ID: "b", Address: addrB}, "")
			if err != nil {
				t.Skipf("cannot bind %s here: %v", addrB, err)
			}
			spoof := spoofFrom(t, b.BoundAddress)
			if _, err := spoof.WriteToUDPAddrPort([]byte("ping"), a.BoundAddress); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			sa, _ := ma.Get("a")
			sb, _ := mb.Get("b")
			if sa.Stats.DatagramsReceived != 1 || sa.Stats.LoopBlocked != 1 || sa.Stats.DatagramsSent != 0 {
				t.Errorf("A: %+v, want the one datagram received and loop-blocked", sa.Stats)
			}
			if sb.Stats.DatagramsReceived != 0 {
				t.Errorf("B received %d datagrams, want 0: A answered it", sb.Stats.DatagramsReceived)
			}
			// A real client still gets its answer.
			mustEcho(t, a.BoundAddress, "still serving")
		})
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
