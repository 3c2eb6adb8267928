package listener

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sockopt reads an int SOL_SOCKET option of worker w's socket.
func sockopt(t *testing.T, w *worker, opt int) int {
	t.Helper()
	var v int
	var serr error
	if err := w.rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// bindReuseAddr tries to bind a plain socket with SO_REUSEADDR, as another
// local user could, to addr, and returns the error.
func bindReuseAddr(t *testing.T, addr netip.AddrPort) error {
	t.Helper()
	var family int
	var sa unix.Sockaddr
	if addr.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	return unix.Bind(fd, sa)
}

// TestNoSocketSharesThePort checks that no listener socket has
// SO_REUSEADDR, so that no other socket (another user's, with
// SO_REUSEADDR) can bind the port and take datagrams meant for udpd.
func TestNoSocketSharesThePort(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		others []string // addresses another socket tries on the same port
	}{
		{"127.0.0.1:0", []string{"127.0.0.1"}},
		{"0.0.0.0:0", []string{"0.0.0.0", "127.0.0.1"}},
		{"[::1]:0", []string{"::1"}},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			l := start(t, tc.addr, 2)
			for i, w := range l.workers {
				if got := sockopt(t, w, unix.SO_REUSEADDR); got != 0 {
					t.Errorf("worker %d: SO_REUSEADDR got %d, want 0", i, got)
				}
				if got := sockopt(t, w, unix.SO_REUSEPORT); got != 1 {
					t.Errorf("worker %d: SO_REUSEPORT got %d, want 1", i, got)
				}
			}
			for _, o := range tc.others {
				other := netip.AddrPortFrom(netip.MustParseAddr(o), l.Addr().Port())
				if err := bindReuseAddr(t, other); !errors.Is(err, syscall.EADDRINUSE) {
					t.Errorf("another socket with SO_REUSEADDR binding %s: got %v, want %v", other, err, syscall.EADDRINUSE)
				}
			}
		})
	}
}

func TestListenRefusesMulticastAndBroadcast(t *testing.T) {
	for _, addr := range []string{
		"224.0.0.1:0",
		"239.255.255.250:1900",
		"255.255.255.255:0",
		"[ff02::1]:0",
		"[ff05::1:3]:0",
		"[::ffff:224.0.0.1]:0",
	} {
		l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort(addr), Workers: 1})
		if !errors.Is(err, ErrNotUnicast) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Listen(%s): got %v, want %v", addr, err, ErrNotUnicast)
		}
	}
}
