//go:build linux && !udpd_portable

package listener

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// adoptFile duplicates a passed socket for a worker (see adopt).
func adoptFile(f *os.File) (sock, netip.AddrPort, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	fd, a, err := adopt(rc)
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, a, err
	}
	return fd, a, nil
}

// adopt duplicates a passed UDP socket for a worker and sets it up like
// the sockets Listen makes (see setup): systemd sets SO_REUSEADDR on the
// sockets it binds; off, no other socket can bind the port from now on.
// It returns the new descriptor (or -1) and the socket's bound address.
func adopt(rc syscall.RawConn) (int, netip.AddrPort, error) {
	fd := -1
	var bound netip.AddrPort
	var serr error
	err := rc.Control(func(s uintptr) {
		typ, err := unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			serr = os.NewSyscallError("getsockopt SO_TYPE", err)
			return
		}
		sa, err := unix.Getsockname(int(s))
		if err != nil {
			serr = os.NewSyscallError("getsockname", err)
			return
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			bound = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			bound = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		}
		if typ != unix.SOCK_DGRAM || !bound.IsValid() {
			serr = fmt.Errorf("a %s socket, not UDP", socketKind(typ, sa))
			return
		}
		if fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0); err != nil {
			fd, serr = -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
			return
		}
		serr = setup(fd)
	})
	if err != nil {
		return fd, bound, err
	}
	return fd, bound, serr
}

// socketKind names a socket that is not UDP for an error message.
func socketKind(typ int, sa unix.Sockaddr) string {
	family := "inet"
	if _, ok := sa.(*unix.SockaddrUnix); ok {
		family = "unix"
	}
	kind := "datagram"
	if typ == unix.SOCK_STREAM {
		kind = "stream"
	}
	return family + " " + kind
}

// sysConn is the worker's socket for Sockets.
func (w *worker) sysConn() syscall.Conn { return socketConn{w} }
