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
// would start a loop (CERT CA-1996-01, CVE-2024-2169). Clients send from
// ephemeral ports, which these are not.
var ClassicResponderPorts = []uint16{7, 13, 17, 19, 37, 12000}

// Policy says which datagrams a listener refuses to answer. The zero
// Policy answers everything.
type Policy struct {
	// Loops says which sources are never answered: responder ports and the
	// daemon's own listener addresses, so that two responders cannot be
	// made to answer each other forever. Nil answers every source.
	Loops *LoopGuard
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

// LoopGuard is the set of sources a listener never answers: responder
// ports, from any address, and this daemon's own listener addresses. One
// writer (the manager) replaces it whenever listeners change; every worker
// reads it per datagram without locks, from an immutable snapshot.
type LoopGuard struct {
	p atomic.Pointer[loopSet]
}

type portBits [1024]uint64

func (b *portBits) set(p uint16)      { b[p/64] |= 1 << (p % 64) }
func (b *portBits) has(p uint16) bool { return b[p/64]&(1<<(p%64)) != 0 }

type loopSet struct {
	responders portBits                    // blocked from any address
	selfPorts  portBits                    // ports of own listeners: worth the exact check
	wildcard   portBits                    // own ports bound to 0.0.0.0 or [::]
	self       map[netip.AddrPort]struct{} // own bound addresses
}

// Set replaces the guard's contents: responder source ports, and the
// addresses this daemon's listeners are bound to. Only the exact own
// addresses are blocked, not every source using an own port, since a
// client's ephemeral port may equal a listener's; a listener bound to a
// wildcard address counts as every loopback address on its port.
func (g *LoopGuard) Set(responderPorts []uint16, self []netip.AddrPort) {
	s := &loopSet{self: make(map[netip.AddrPort]struct{}, len(self))}
	for _, p := range responderPorts {
		s.responders.set(p)
	}
	for _, a := range self {
		s.selfPorts.set(a.Port())
		if a.Addr().IsUnspecified() {
			s.wildcard.set(a.Port())
		}
		s.self[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())] = struct{}{}
	}
	g.p.Store(s)
}

// Blocks reports whether a datagram from src:port must not be answered.
func (g *LoopGuard) Blocks(src netip.Addr, port uint16) bool {
	if g == nil {
		return false
	}
	s := g.p.Load()
	if s == nil {
		return false
	}
	if s.responders.has(port) {
		return true
	}
	if !s.selfPorts.has(port) {
		return false // the common case: one bit test
	}
	if s.wildcard.has(port) && src.IsLoopback() {
		return true
	}
	_, own := s.self[netip.AddrPortFrom(src, port)]
	return own
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
