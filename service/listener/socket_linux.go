package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// bindGroup binds n UDP sockets to addr with SO_REUSEPORT so the kernel
// spreads datagrams over them by flow. SO_REUSEPORT would also let a second
// group (this daemon's or another process's) share the port silently, so a
// fixed port is first bound once without it: if anything holds the port,
// that probe fails with EADDRINUSE.
func bindGroup(ctx context.Context, addr netip.AddrPort, n int) ([]*net.UDPConn, netip.AddrPort, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	laddr := net.UDPAddrFromAddrPort(addr)
	if addr.Port() != 0 {
		var probe net.ListenConfig
		c, err := probe.ListenPacket(ctx, network, laddr.String())
		if err != nil {
			return nil, netip.AddrPort{}, err
		}
		c.Close()
	}
	lc := net.ListenConfig{Control: controlSocket}
	conns := make([]*net.UDPConn, 0, n)
	fail := func(err error) ([]*net.UDPConn, netip.AddrPort, error) {
		for _, c := range conns {
			c.Close()
		}
		return nil, netip.AddrPort{}, err
	}
	bound := addr
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(ctx, network, net.UDPAddrFromAddrPort(bound).String())
		if err != nil {
			return fail(err)
		}
		c := pc.(*net.UDPConn)
		conns = append(conns, c)
		if i == 0 {
			bound = c.LocalAddr().(*net.UDPAddr).AddrPort()
		}
	}
	return conns, bound, nil
}

func controlSocket(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		if serr != nil {
			serr = fmt.Errorf("setsockopt SO_REUSEPORT: %w", serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
