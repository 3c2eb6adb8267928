//go:build !linux || udpd_portable

package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
)

// portableWorker says which worker this build has: the portable one.
const portableWorker = true

// sock is a worker's socket: the net package's.
type sock = *net.UDPConn

func closeSock(c sock) { c.Close() }

// bindGroup binds one UDP socket to addr, whatever n: without
// SO_REUSEPORT's load balancing (Linux only) more sockets on one address
// would not share its datagrams, so the portable worker serves an address
// with one socket.
func bindGroup(ctx context.Context, addr netip.AddrPort, _ int) ([]*net.UDPConn, netip.AddrPort, error) {
	network := "udp4"
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: controlExclusive}
	pc, err := lc.ListenPacket(ctx, network, net.UDPAddrFromAddrPort(addr).String())
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	c := pc.(*net.UDPConn)
	bound := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return []*net.UDPConn{c}, netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()), nil
}

// adoptFile makes a worker's socket of a passed one (the net package
// duplicates the descriptor), with SO_REUSEADDR off (see controlExclusive).
func adoptFile(f *os.File) (sock, netip.AddrPort, error) {
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	c, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, netip.AddrPort{}, fmt.Errorf("a %s socket, not UDP", pc.LocalAddr().Network())
	}
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	rc, err := c.SyscallConn()
	if err == nil {
		err = controlExclusive("", "", rc)
	}
	if err != nil {
		c.Close()
		return nil, a, err
	}
	if !a.IsValid() {
		c.Close()
		return nil, a, errors.New("socket has no address")
	}
	return c, a, nil
}
