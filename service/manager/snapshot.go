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
	Listeners []Listener     // the running listeners, ordered by id
}

// Snapshot reads every listener's counters once and describes every
// listener. Its cost grows with the number of listeners and sockets (the
// kernel drop count is a system call per socket), so callers that need it
// often share one (see service/sampler).
func (m *Manager) Snapshot() Snapshot {
	m.mu.Lock()
	now, start, retired := time.Now(), m.start, m.retired
	stopping := make([]counters, 0, len(m.stopping))
	for e := range m.stopping {
		stopping = append(stopping, countersOf(e))
	}
	views := make([]view, len(m.order))
	for i, e := range m.order {
		views[i] = m.viewOf(e)
	}
	m.mu.Unlock()

	s := Snapshot{Time: now, Total: retired, Listeners: make([]Listener, len(views))}
	for i := range stopping {
		stopping[i].read()
		s.Total = s.Total.Add(stopping[i].stats)
	}
	for i := range views {
		s.Listeners[i] = views[i].listener()
		s.Total = s.Total.Add(s.Listeners[i].Stats)
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
	s := Snapshot{Time: time.Now(), Total: m.retired, Listeners: make([]Listener, len(m.order))}
	for e := range m.stopping {
		s.Total = s.Total.Add(quick(e))
	}
	for i, e := range m.order {
		l := &s.Listeners[i]
		m.describe(e, l)
		l.Stats = quick(e)
		s.Total = s.Total.Add(l.Stats)
	}
	s.Total.Start = m.start
	return s
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
func (s *Snapshot) Listener(id string) (Listener, bool) {
	i, ok := slices.BinarySearchFunc(s.Listeners, id, func(l Listener, id string) int { return strings.Compare(l.ID, id) })
	if !ok {
		return Listener{}, false
	}
	return s.Listeners[i], true
}
