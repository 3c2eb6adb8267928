//go:build linux

package listener

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sockopt reads an int SOL_SOCKET option of worker w's socket.
func sockopt(t *testing.T, w *worker, opt int) int {
	t.Helper()
	rc, err := w.sysConn().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// reuseAddrSocket returns a UDP socket with SO_REUSEADDR bound to addr,
// as systemd binds the sockets it passes, or the bind's error.
func reuseAddrSocket(t *testing.T, addr netip.AddrPort) (int, error) {
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
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// bindReuseAddr tries to bind a plain socket with SO_REUSEADDR, as another
// local user could, to addr, and returns the error.
func bindReuseAddr(t *testing.T, addr netip.AddrPort) error {
	t.Helper()
	fd, err := reuseAddrSocket(t, addr)
	if err == nil {
		unix.Close(fd)
	}
	return err
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
				if got := sockopt(t, w, unix.SO_REUSEPORT); got != 1 && !portableWorker {
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

// TestFromFilesTurnsReuseAddrOff checks that a socket passed in with
// SO_REUSEADDR (as systemd binds them) loses it, so no other socket can
// bind its port afterwards, and that a multicast one is refused.
func TestFromFilesTurnsReuseAddrOff(t *testing.T) {
	fd, err := reuseAddrSocket(t, netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "passed")
	defer f.Close()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	if err := bindReuseAddr(t, addr); err != nil {
		t.Fatalf("before FromFiles, a second SO_REUSEADDR socket on %s: got %v, want it bound (the test's premise)", addr, err)
	}
	l, err := FromFiles([]*os.File{f}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := sockopt(t, l.workers[0], unix.SO_REUSEADDR); got != 0 {
		t.Errorf("SO_REUSEADDR after FromFiles: got %d, want 0", got)
	}
	if err := bindReuseAddr(t, addr); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("after FromFiles, a SO_REUSEADDR socket on %s: got %v, want %v", addr, err, syscall.EADDRINUSE)
	}

	mfd, err := reuseAddrSocket(t, netip.MustParseAddrPort("224.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	mf := os.NewFile(uintptr(mfd), "multicast")
	defer mf.Close()
	if l, err := FromFiles([]*os.File{mf}, Config{}); !errors.Is(err, ErrNotUnicast) {
		if l != nil {
			l.Close()
		}
		t.Errorf("FromFiles(a socket on 224.0.0.1): got %v, want %v", err, ErrNotUnicast)
	}
}
