package listener

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udpd/udpd/service/ratelimit"
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
//
// A listener bound to a wildcard address (0.0.0.0, [::]) serves every
// address of the host, so for its port the guard blocks the datagram's own
// destination (source == destination), every loopback address and every
// address of the host's interfaces. Zones are ignored: a link-local
// listener stored as fe80::1%eth0 blocks the source fe80::1, which is how
// the kernel reports it.
type LoopGuard struct {
	p atomic.Pointer[loopSet]

	mu          sync.Mutex   // serialises writers (Set and host refreshes)
	refreshedAt atomic.Int64 // unix nanoseconds of the last host address read
}

type portBits [1024]uint64

func (b *portBits) set(p uint16)      { b[p/64] |= 1 << (p % 64) }
func (b *portBits) has(p uint16) bool { return b[p/64]&(1<<(p%64)) != 0 }

type loopSet struct {
	responders portBits                    // blocked from any address
	selfPorts  portBits                    // ports of own listeners: worth the exact check
	wildcard   portBits                    // own ports bound to 0.0.0.0 or [::]
	self       map[netip.AddrPort]struct{} // own bound addresses, unmapped, no zone
	host       map[netip.Addr]struct{}     // the host's interface addresses, if any wildcard
}

// hostRefreshEvery bounds how often a datagram from an unknown source on a
// wildcard listener's port makes the guard read the host's addresses
// again (an address may have been added since the last read).
const hostRefreshEvery = time.Second

// Set replaces the guard's contents: responder source ports, and the
// addresses this daemon's listeners are bound to. Only the exact own
// addresses are blocked, not every source using an own port, since a
// client's ephemeral port may equal a listener's; a listener bound to a
// wildcard address counts as every address of the host on its port.
func (g *LoopGuard) Set(responderPorts []uint16, self []netip.AddrPort) {
	s := &loopSet{self: make(map[netip.AddrPort]struct{}, len(self))}
	for _, p := range responderPorts {
		s.responders.set(p)
	}
	anyWildcard := false
	for _, a := range self {
		s.selfPorts.set(a.Port())
		if a.Addr().IsUnspecified() {
			s.wildcard.set(a.Port())
			anyWildcard = true
		}
		s.self[netip.AddrPortFrom(plain(a.Addr()), a.Port())] = struct{}{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if anyWildcard {
		s.host = hostAddrs()
		g.refreshedAt.Store(time.Now().UnixNano())
	}
	g.p.Store(s)
}

// refreshHost reads the host's addresses again, at most once per
// hostRefreshEvery, and reports whether it did.
func (g *LoopGuard) refreshHost() bool {
	last := g.refreshedAt.Load()
	now := time.Now().UnixNano()
	if now-last < int64(hostRefreshEvery) || !g.refreshedAt.CompareAndSwap(last, now) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.p.Load()
	s := *old
	s.host = hostAddrs()
	g.p.Store(&s)
	return true
}

// hostAddrs returns the addresses of the host's interfaces, unmapped and
// without zones; nil if they cannot be read.
func hostAddrs() map[netip.Addr]struct{} {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				m[plain(ip)] = struct{}{}
			}
		}
	}
	return m
}

// plain is a without IPv4 mapping and without zone: how the kernel reports
// a datagram's source.
func plain(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// Blocks reports whether a datagram from src:port must not be answered.
// dst is the address it was sent to when the listener knows it (a wildcard
// listener on Linux), else the zero Addr.
func (g *LoopGuard) Blocks(src netip.Addr, port uint16, dst netip.Addr) bool {
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
	if _, own := s.self[netip.AddrPortFrom(src, port)]; own {
		return true
	}
	if !s.wildcard.has(port) {
		return false
	}
	if src == dst || src.IsLoopback() {
		return true
	}
	if _, own := s.host[src]; own {
		return true
	}
	// Perhaps an address added since the guard last looked.
	if g.refreshHost() {
		_, own := g.p.Load().host[src]
		return own
	}
	return false
}
