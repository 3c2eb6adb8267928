//go:build unix

package daemon

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// udpSocketAddr is the address a UDP socket is bound to, or an error if
// the file is not a bound UDP socket.
func udpSocketAddr(f *os.File) (netip.AddrPort, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var sa unix.Sockaddr
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if typ, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE); serr != nil {
			return
		}
		sa, serr = unix.Getsockname(int(fd))
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("not a socket: %w", serr)
	}
	var addr netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		addr = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	default:
		return netip.AddrPort{}, fmt.Errorf("not an IP socket (ListenDatagram= takes an address or port)")
	}
	if typ != unix.SOCK_DGRAM {
		return netip.AddrPort{}, fmt.Errorf("not a datagram socket: use ListenDatagram=")
	}
	if addr.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("socket is not bound")
	}
	return addr, nil
}
