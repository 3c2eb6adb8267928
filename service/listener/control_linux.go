//go:build linux && !udpd_portable

package listener

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds what the batched path needs besides the data: source
// addresses (sockaddrs) and, on wildcard listeners, each datagram's
// destination address (IP_PKTINFO / IPV6_PKTINFO control messages), read
// with the datagram and given back to the kernel with the reply so that it
// leaves from the address that was asked.

// ctlSize holds one pktinfo control message, IPv4 (32 bytes) or IPv6 (40),
// and one UDP_GRO control message (24 bytes, see gro_linux.go).
const ctlSize = 64

// pktinfo is one worker's control message buffers. The zero pktinfo is off:
// headers get no control buffers and dest returns the zero Addr.
type pktinfo struct {
	on   bool
	v6   bool
	gro  bool   // UDP_GRO is on: receive headers need control buffers too (gro_linux.go)
	recv []byte // ctlSize per receive header
	send []byte // ctlSize per reply header
}

// enablePktinfo asks the kernel for each datagram's destination address.
func enablePktinfo(rc syscall.RawConn, v6 bool) error {
	level, opt, name := unix.IPPROTO_IP, unix.IP_PKTINFO, "IP_PKTINFO"
	if v6 {
		level, opt, name = unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt %s: %w", name, serr)
	}
	return nil
}

// setup gives each receive header a control buffer (and makes one per
// reply header), for n headers.
func (c *pktinfo) setup(rhdrs []unix.Mmsghdr) {
	if !c.on && !c.gro {
		return
	}
	n := len(rhdrs)
	c.recv = make([]byte, n*ctlSize)
	c.send = make([]byte, n*ctlSize)
	for i := range rhdrs {
		rhdrs[i].Hdr.Control = &c.recv[i*ctlSize]
	}
}

// rearm restores a receive header's control length before a read.
func (c *pktinfo) rearm(h *unix.Msghdr) {
	if c.on || c.gro {
		h.SetControllen(ctlSize)
	}
}

// dest returns the destination address of the datagram received in h
// (the address to answer from) and the interface it came in on, or the
// zero Addr when it is not known.
func (c *pktinfo) dest(h *unix.Msghdr) (netip.Addr, uint32) {
	if !c.on || h.Control == nil || h.Controllen == 0 {
		return netip.Addr{}, 0
	}
	ctl := unsafe.Slice(h.Control, min(int(h.Controllen), ctlSize))
	for {
		cm, data, rest, ok := nextCmsg(ctl)
		if !ok {
			return netip.Addr{}, 0
		}
		switch {
		case cm.Level == unix.IPPROTO_IP && cm.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// Spec_dst is the local address the kernel would answer from:
			// the destination of a unicast datagram, and an address of
			// the receiving interface for a broadcast or multicast one.
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom4(pi.Spec_dst), uint32(pi.Ifindex)
		case cm.Level == unix.IPPROTO_IPV6 && cm.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom16(pi.Addr), pi.Ifindex
		}
		ctl = rest
	}
}

// reply makes the reply header s (the q-th reply of a batch) leave from
// src, the address its request was sent to; with no src, the kernel
// chooses as it would without pktinfo.
func (c *pktinfo) reply(q int, s *unix.Msghdr, src netip.Addr, ifindex uint32) {
	if !c.on || !src.IsValid() {
		s.Control = nil
		s.SetControllen(0)
		return
	}
	b := c.send[q*ctlSize : (q+1)*ctlSize]
	clear(b)
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	data := b[unix.CmsgLen(0):]
	if c.v6 {
		cm.Level, cm.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		cm.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
		if !src.IsMulticast() {
			pi.Addr = src.As16()
		}
		if src.IsLinkLocalUnicast() || src.IsMulticast() {
			pi.Ifindex = ifindex // a link-local address means nothing without its link
		}
		s.SetControllen(unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	} else {
		cm.Level, cm.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		cm.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
		pi.Spec_dst = src.As4()
		s.SetControllen(unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	}
	s.Control = &b[0]
}

// sourceOf reads the address the kernel stored for a received datagram.
func sourceOf(sa *unix.RawSockaddrAny) (netip.Addr, uint16) {
	switch sa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrFrom4(in.Addr), portOf(in.Port)
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrFrom16(in.Addr).Unmap(), portOf(in.Port)
	}
	return netip.Addr{}, 0
}

// portOf converts a sockaddr port (network byte order in memory) to a number.
func portOf(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}

// nextCmsg splits the first control message off ctl: its header, its
// data and the messages after it. ok is false at the end of ctl or on a
// malformed header.
func nextCmsg(ctl []byte) (cm *unix.Cmsghdr, data, rest []byte, ok bool) {
	hdrLen := unix.CmsgLen(0)
	if len(ctl) < hdrLen {
		return nil, nil, nil, false
	}
	cm = (*unix.Cmsghdr)(unsafe.Pointer(&ctl[0]))
	l := int(cm.Len)
	if l < hdrLen || l > len(ctl) {
		return nil, nil, nil, false
	}
	return cm, ctl[hdrLen:l], ctl[min(unix.CmsgSpace(l-hdrLen), len(ctl)):], true
}
