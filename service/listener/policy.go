package listener

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"github.com/udpd/udpd/service/ratelimit"
	"golang.org/x/sys/unix"
)

// ClassicResponderPorts are the source ports of the classic UDP responders
// (echo 7, daytime 13, qotd 17, chargen 19, time 37) and of udpd's own
// default port (12000). A datagram from one of them is most likely a reply
// from another responder, bounced at us by a spoofed source: answering it
// would start a loop (CERT CA-1996-01, CVE-2024-2169).
var ClassicResponderPorts = []uint16{7, 13, 17, 19, 37, 12000}

// Policy says which datagrams a listener refuses to answer. The zero
// Policy answers everything.
type Policy struct {
	// LoopPorts holds source ports never answered: typically the classic
	// responder ports and every port this daemon listens on, so that two
	// responders cannot be made to answer each other forever.
	LoopPorts *PortSet
	// RateLimit limits answers per source network, across all the
	// listener's workers.
	RateLimit ratelimit.Config
	// LimitLoopback applies RateLimit to loopback sources too; by default
	// they are exempt, so local tools and benchmarks are not throttled.
	LimitLoopback bool
	// MaxReplyRatio, when positive, refuses replies longer than this many
	// times their request (the uppercase of some text is up to 3x longer).
	MaxReplyRatio float64
}

// PortSet is a set of UDP ports that one writer replaces while many
// readers test it, without locks: readers load an immutable bitmap.
type PortSet struct {
	bits atomic.Pointer[[1024]uint64]
}

// Set replaces the set's ports.
func (s *PortSet) Set(ports []uint16) {
	var b [1024]uint64
	for _, p := range ports {
		b[p/64] |= 1 << (p % 64)
	}
	s.bits.Store(&b)
}

// Has reports whether port is in the set.
func (s *PortSet) Has(port uint16) bool {
	if s == nil {
		return false
	}
	b := s.bits.Load()
	return b != nil && b[port/64]&(1<<(port%64)) != 0
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
