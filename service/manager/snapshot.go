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
func (m *Manager) Snapshot() Snapshot { return m.snapshot(true) }

// QuickSnapshot is Snapshot without a system call: each KernelDrops is
// the count that the last read of that socket's (a Snapshot, Stats, Get or
// List) found. A sampler that ticks often takes a Snapshot now and then
// and QuickSnapshots between.
func (m *Manager) QuickSnapshot() Snapshot { return m.snapshot(false) }

func (m *Manager) snapshot(kernel bool) Snapshot {
	m.mu.Lock()
	now, start, retired := time.Now(), m.start, m.retired
	stopping := make([]counters, 0, len(m.stopping))
	for e := range m.stopping {
		stopping = append(stopping, countersOf(e))
	}
	views := make([]view, 0, len(m.byID))
	for _, e := range m.byID {
		views = append(views, m.viewOf(e))
	}
	m.mu.Unlock()

	read := (*counters).read
	if !kernel {
		read = (*counters).readQuick
	}
	s := Snapshot{Time: now, Total: retired, Listeners: make([]Listener, len(views))}
	for i := range stopping {
		read(&stopping[i])
		s.Total = s.Total.Add(stopping[i].stats)
	}
	for i := range views {
		read(&views[i].c)
		views[i].l.Stats = views[i].c.stats
		s.Listeners[i] = views[i].l
		s.Total = s.Total.Add(s.Listeners[i].Stats)
	}
	s.Total.Start = start
	slices.SortFunc(s.Listeners, func(a, b Listener) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// readQuick is read without a system call (see QuickSnapshot).
func (c *counters) readQuick() {
	c.stats = c.base
	for _, g := range c.groups {
		c.stats = c.stats.Add(g.Counters())
	}
}

// Listener returns listener id from the snapshot, or false.
func (s *Snapshot) Listener(id string) (Listener, bool) {
	i, ok := slices.BinarySearchFunc(s.Listeners, id, func(l Listener, id string) int { return strings.Compare(l.ID, id) })
	if !ok {
		return Listener{}, false
	}
	return s.Listeners[i], true
}
