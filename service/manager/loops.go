package manager

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"

	"github.com/udpd/udpd/service/listener"
)

// updateLoops publishes what listeners never answer: the classic
// responder ports, the configured ones, and the address of every listener
// of this daemon (draining ones included). Called with m.mu held.
func (m *Manager) updateLoops() {
	ports := append(slices.Clone(listener.ClassicResponderPorts), m.opts.LoopPorts...)
	var self []netip.AddrPort
	for _, e := range m.byID {
		for _, g := range e.groups {
			self = append(self, g.Addr())
		}
	}
	for e := range m.stopping {
		for _, g := range e.groups {
			self = append(self, g.Addr())
		}
	}
	m.loops.Set(ports, self)
}

// onAddress returns the listener asked to run on addr (port 0 never
// matches: each asks for a port of its own). Called with m.change held.
func (m *Manager) onAddress(addr netip.AddrPort) *entry {
	if addr.Port() == 0 {
		return nil
	}
	for _, e := range m.byID {
		if e.addr == addr || (e.cur != nil && e.cur.Addr() == addr) {
			return e
		}
	}
	return nil
}

// newID makes an id for a listener on addr: "udp-PORT" (with a suffix if
// that is taken), or a random one for port 0. Called with m.change held.
func (m *Manager) newID(addr netip.AddrPort) string {
	if addr.Port() != 0 {
		base := "udp-" + strconv.Itoa(int(addr.Port()))
		if _, taken := m.byID[base]; !taken {
			return base
		}
		for i := 2; ; i++ {
			id := base + "-" + strconv.Itoa(i)
			if _, taken := m.byID[id]; !taken {
				return id
			}
		}
	}
	for {
		var b [3]byte
		rand.Read(b[:])
		id := "udp-" + hex.EncodeToString(b[:])
		if _, taken := m.byID[id]; !taken {
			return id
		}
	}
}
