//go:build linux && !udpd_portable

package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindGroup binds n UDP sockets to addr with SO_REUSEPORT so the kernel
// spreads datagrams over them by flow. SO_REUSEPORT would also let a second
// group (this daemon's or another process's, same user) share the port
// silently, so the port is first bound once without it: a fixed port that
// anything holds fails there with EADDRINUSE, and port 0 gets a port no
// socket holds (the kernel's choice for a SO_REUSEPORT socket may be a port
// another SO_REUSEPORT group of this user already has).
//
// The sockets are plain file descriptors in blocking mode, never registered
// with the Go runtime's netpoller (see wait_linux.go).
func bindGroup(ctx context.Context, addr netip.AddrPort, n int) ([]int, netip.AddrPort, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	if addr.Port() != 0 {
		return bindFixed(ctx, network, addr, n)
	}
	// Between the exclusive bind and the group's, another socket may take
	// the port: try a few free ports.
	var err error
	for range 8 {
		var port uint16
		port, err = probe(ctx, network, addr)
		if err != nil {
			return nil, netip.AddrPort{}, err
		}
		var conns []int
		var bound netip.AddrPort
		conns, bound, err = bindFixed(ctx, network, netip.AddrPortFrom(addr.Addr(), port), n)
		if !errors.Is(err, syscall.EADDRINUSE) {
			return conns, bound, err
		}
	}
	return nil, netip.AddrPort{}, err
}

// probe binds addr exclusively (no SO_REUSEPORT) and closes it again,
// returning the port it got.
func probe(ctx context.Context, network string, addr netip.AddrPort) (uint16, error) {
	lc := net.ListenConfig{Control: controlExclusive}
	c, err := lc.ListenPacket(ctx, network, net.UDPAddrFromAddrPort(addr).String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Port(), nil
}

// bindFixed binds the group on a fixed port after checking that nothing
// holds it.
func bindFixed(ctx context.Context, network string, addr netip.AddrPort, n int) ([]int, netip.AddrPort, error) {
	if _, err := probe(ctx, network, addr); err != nil {
		return nil, netip.AddrPort{}, err
	}
	fds := make([]int, 0, n)
	for range n {
		fd, err := socket(network, addr)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, netip.AddrPort{}, fmt.Errorf("listen %s %v: %w", network, addr, err)
		}
		fds = append(fds, fd)
	}
	sa, err := unix.Getsockname(fds[0])
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, netip.AddrPort{}, fmt.Errorf("listen %s %v: %w", network, addr, os.NewSyscallError("getsockname", err))
	}
	var bound netip.AddrPort
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		bound = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		bound = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).WithZone(addr.Addr().Zone()), uint16(sa.Port))
	}
	return fds, netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()), nil
}

// socket makes one UDP socket with SO_REUSEPORT bound to addr, as the net
// package would (IPV6_V6ONLY on udp6), set up for a worker (see setup).
func socket(network string, addr netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if network == "udp6" {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, os.NewSyscallError(op, err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt IPV6_V6ONLY", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("setsockopt SO_REUSEPORT", err)
	}
	if err := setup(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().Unmap().As4()}
	} else {
		sa6 := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
		if z := addr.Addr().Zone(); z != "" {
			if i, err := strconv.ParseUint(z, 10, 32); err == nil {
				sa6.ZoneId = uint32(i)
			} else if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			} else {
				unix.Close(fd)
				return -1, err
			}
		}
		sa = sa6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	return fd, nil
}

// setup readies a bound socket for a worker: never SO_REUSEADDR (see
// controlExclusive), blocking, and with send and receive timeouts
// (hotWait) so that no system call on it blocks for long.
func setup(fd int) error {
	if err := noReuseAddr(fd); err != nil {
		return err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	tv := unix.NsecToTimeval(int64(hotWait))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt SO_SNDTIMEO", err)
	}
	return nil
}

// portableWorker says which worker this build has: the batched one.
const portableWorker = false

// sock is a worker's socket: a descriptor the netpoller does not watch.
type sock = int

func closeSock(fd sock) { unix.Close(fd) }
