package manager

import (
	"slices"
	"strings"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Snapshot is every listener, counters included, and the daemon's totals
// at one instant: what a stats sampler reads once per tick.
type Snapshot struct {
	Time      time.Time
	Total     listener.Stats // every listener ever started, stopped ones included
	Listeners []Listener     // ordered by id
}

// Snapshot reads every listener's counters once and describes every
// listener. Its cost grows with the number of listeners and sockets (the
// kernel drop count is a system call per socket), so callers that need it
// often share one (see service/sampler).
func (m *Manager) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Time: time.Now(), Total: m.retired, Listeners: make([]Listener, 0, len(m.byID))}
	for e := range m.stopping {
		s.Total = s.Total.Add(e.stats())
	}
	for _, e := range m.byID {
		l := m.describe(e)
		s.Total = s.Total.Add(l.Stats)
		s.Listeners = append(s.Listeners, l)
	}
	s.Total.Start = m.start
	slices.SortFunc(s.Listeners, func(a, b Listener) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// Listener returns listener id from the snapshot, or false.
func (s *Snapshot) Listener(id string) (Listener, bool) {
	i, ok := slices.BinarySearchFunc(s.Listeners, id, func(l Listener, id string) int { return strings.Compare(l.ID, id) })
	if !ok {
		return Listener{}, false
	}
	return s.Listeners[i], true
}
