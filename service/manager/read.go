package manager

import (
	"fmt"
	"maps"
	"slices"

	"github.com/udpd/udpd/service/listener"
)

// The read path: every method here takes m.mu only to copy what it needs
// (a view per entry) and reads the sockets' counters after releasing it.

// Get returns one listener: a running one, or one stopped and still
// draining (StateDraining) whose id no running listener has taken.
func (m *Manager) Get(id string) (Listener, error) {
	m.mu.Lock()
	e := m.listed()[id]
	var v view
	if e != nil {
		v = m.viewOf(e)
	}
	m.mu.Unlock()
	if e == nil {
		return Listener{}, fmt.Errorf("get %q: %w", id, ErrNotFound)
	}
	return v.listener(), nil
}

// List returns up to limit listeners ordered by id, starting after the id
// after (empty: from the first), and whether more follow. Listeners
// stopped and still draining are listed (StateDraining) until their
// sockets close, unless a running listener has taken their id.
func (m *Manager) List(after string, limit int) ([]Listener, bool) {
	m.mu.Lock()
	listed := m.listed()
	ids := make([]string, 0, len(listed))
	for id := range listed {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	more := limit > 0 && len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	views := make([]view, len(ids))
	for i, id := range ids {
		views[i] = m.viewOf(listed[id])
	}
	m.mu.Unlock()

	out := make([]Listener, len(views))
	for i, v := range views {
		out[i] = v.listener()
	}
	return out, more
}

// listed is every listener List shows, by id: the running ones, and the
// draining ones whose id is free. Called with m.mu held.
func (m *Manager) listed() map[string]*entry {
	if len(m.stopping) == 0 {
		return m.byID
	}
	all := maps.Clone(m.byID)
	for e := range m.stopping {
		if _, taken := all[e.spec.ID]; !taken && len(e.groups) > 0 {
			all[e.spec.ID] = e
		}
	}
	return all
}

// Stats returns the counters of listener id (all listeners when id is
// empty, ordered by id) and the daemon's totals, which include every
// listener stopped since the Manager was made.
func (m *Manager) Stats(id string) (total listener.Stats, per []ListenerStats, err error) {
	m.mu.Lock()
	retired, start := m.retired, m.start
	all := make([]counters, 0, len(m.stopping)+len(m.byID))
	for e := range m.stopping {
		all = append(all, countersOf(e))
	}
	mine := -1
	for _, e := range m.order {
		if e.spec.ID == id {
			mine = len(all)
		}
		all = append(all, countersOf(e))
	}
	m.mu.Unlock()
	if id != "" && mine < 0 {
		return listener.Stats{}, nil, fmt.Errorf("stats %q: %w", id, ErrNotFound)
	}

	total = retired
	for i := range all {
		all[i].read()
		total = total.Add(all[i].stats)
	}
	total.Start = start
	if id != "" {
		return total, []ListenerStats{{id, all[mine].stats}}, nil
	}
	per = make([]ListenerStats, 0, len(all))
	for _, c := range all {
		if c.id != "" {
			per = append(per, ListenerStats{c.id, c.stats})
		}
	}
	return total, per, nil
}

// Specs returns the configuration of every listener, ordered by id.
func (m *Manager) Specs() []Spec {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.specs()
}

// read describes e as it is now. Called with m.mu not held.
func (m *Manager) read(e *entry) Listener {
	m.mu.Lock()
	v := m.viewOf(e)
	m.mu.Unlock()
	return v.listener()
}

// counters is a copy of an entry's counter sources: the counters of its
// groups gone and the groups still open, whose counters are read later.
type counters struct {
	id     string // empty for a stopped listener still draining
	base   listener.Stats
	groups []*listener.Listener
	stats  listener.Stats // set by read
}

// countersOf must be called with m.mu held.
func countersOf(e *entry) counters {
	c := counters{base: e.base, groups: slices.Clone(e.groups)}
	if !e.stopped {
		c.id = e.spec.ID
	}
	return c
}

// read sums the counters; it reads every socket and takes no lock.
func (c *counters) read() {
	c.stats = c.base
	for _, g := range c.groups {
		c.stats = c.stats.Add(g.Stats())
	}
}

// view is a copy of an entry: a Listener without its counters, and where
// to read them.
type view struct {
	l Listener
	c counters
}

// viewOf must be called with m.mu held.
func (m *Manager) viewOf(e *entry) view {
	return view{l: m.describe(e), c: countersOf(e)}
}

// describe is e without its counters. Called with m.mu held.
func (m *Manager) describe(e *entry) Listener {
	l := Listener{
		ID:         e.spec.ID,
		Address:    e.spec.Address,
		State:      StateRunning,
		Generation: e.gen,
		Created:    e.created,
		Bound:      e.bound,
		Limits:     m.limits(e.spec),
	}
	switch {
	case e.cur != nil:
		l.BoundAddress = e.cur.Addr()
		l.Workers = e.cur.Workers()
	case len(e.groups) > 0: // stopped, draining
		l.State = StateDraining
		l.BoundAddress = e.groups[len(e.groups)-1].Addr()
		l.Workers = e.groups[len(e.groups)-1].Workers()
	case e.stopped:
		l.State = StateStopped
	}
	return l
}

// listener reads the counters and returns the whole Listener.
func (v view) listener() Listener {
	v.c.read()
	v.l.Stats = v.c.stats
	return v.l
}
