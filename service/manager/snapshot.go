package manager

import (
	"slices"
	"strings"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Snapshot is every listener's counters and the daemon's totals at one
// instant: what a stats sampler reads once per tick. Describe tells the
// rest of each listener.
type Snapshot struct {
	Time      time.Time
	Total     listener.Stats  // every listener ever started, stopped ones included
	Listeners []ListenerStats // the running listeners, ordered by id
}

// Snapshot reads every listener's counters once. Its cost grows with the
// number of listeners and sockets (the kernel drop count is a system call
// per socket), so callers that need it often share one (see
// service/sampler).
func (m *Manager) Snapshot() Snapshot {
	m.mu.Lock()
	now, start, retired := time.Now(), m.start, m.retired
	all := make([]counters, 0, len(m.stopping)+len(m.order))
	for _, e := range m.order {
		all = append(all, countersOf(e))
	}
	for e := range m.stopping {
		all = append(all, countersOf(e))
	}
	n := len(m.order)
	m.mu.Unlock()

	s := Snapshot{Time: now, Total: retired, Listeners: make([]ListenerStats, n)}
	for i := range all {
		all[i].read()
		s.Total = s.Total.Add(all[i].stats)
		if i < n {
			s.Listeners[i] = ListenerStats{all[i].id, all[i].stats}
		}
	}
	s.Total.Start = start
	return s
}

// QuickSnapshot is Snapshot without a system call: each KernelDrops is
// the count that the last read of that socket's (a Snapshot, Stats, Get or
// List) found. A sampler that ticks often takes a Snapshot now and then
// and QuickSnapshots between. Its reads are atomic loads, made with m.mu
// held, so it copies and sorts nothing but its result.
func (m *Manager) QuickSnapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Time: time.Now(), Total: m.retired, Listeners: make([]ListenerStats, len(m.order))}
	for e := range m.stopping {
		s.Total = s.Total.Add(quick(e))
	}
	for i, e := range m.order {
		s.Listeners[i] = ListenerStats{e.spec.ID, quick(e)}
		s.Total = s.Total.Add(s.Listeners[i].Stats)
	}
	s.Total.Start = m.start
	return s
}

// Describe returns every running listener, ordered by id, without its
// counters (Stats is zero): no system call, and nothing read but the
// manager's own records.
func (m *Manager) Describe() []Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Listener, len(m.order))
	for i, e := range m.order {
		out[i] = m.describe(e)
	}
	return out
}

// quick is e's counters without a system call (see QuickSnapshot).
// Called with m.mu held.
func quick(e *entry) listener.Stats {
	st := e.base
	for _, g := range e.groups {
		st = st.Add(g.Counters())
	}
	return st
}

// Listener returns listener id from the snapshot, or false.
func (s *Snapshot) Listener(id string) (ListenerStats, bool) {
	i, ok := slices.BinarySearchFunc(s.Listeners, id, func(l ListenerStats, id string) int { return strings.Compare(l.ID, id) })
	if !ok {
		return ListenerStats{}, false
	}
	return s.Listeners[i], true
}
