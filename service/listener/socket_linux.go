package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
func bindGroup(ctx context.Context, addr netip.AddrPort, n int) ([]*net.UDPConn, netip.AddrPort, error) {
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
		var conns []*net.UDPConn
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
func bindFixed(ctx context.Context, network string, addr netip.AddrPort, n int) ([]*net.UDPConn, netip.AddrPort, error) {
	if _, err := probe(ctx, network, addr); err != nil {
		return nil, netip.AddrPort{}, err
	}
	lc := net.ListenConfig{Control: controlSocket}
	conns := make([]*net.UDPConn, 0, n)
	for range n {
		pc, err := lc.ListenPacket(ctx, network, net.UDPAddrFromAddrPort(addr).String())
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, netip.AddrPort{}, err
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	bound := conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
	return conns, netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()), nil
}

// controlSocket makes a socket of a group: SO_REUSEPORT on, and
// SO_REUSEADDR off (see controlExclusive).
func controlSocket(network, address string, rc syscall.RawConn) error {
	if err := controlExclusive(network, address, rc); err != nil {
		return err
	}
	return setsockopt(rc, unix.SO_REUSEPORT, "SO_REUSEPORT", 1)
}

// controlExclusive turns SO_REUSEADDR off. On a UDP socket it would let
// any other socket that sets it too, any user's, bind the same port and
// take datagrams meant for udpd. Go sets it itself for multicast
// addresses (which Listen refuses); this makes sure no listener socket
// ever has it, whatever the net package decides.
func controlExclusive(_, _ string, rc syscall.RawConn) error {
	return setsockopt(rc, unix.SO_REUSEADDR, "SO_REUSEADDR", 0)
}

func setsockopt(rc syscall.RawConn, opt int, name string, v int) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, v)
		if serr != nil {
			serr = fmt.Errorf("setsockopt %s: %w", name, serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
