package manager

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Adopted is a listener whose sockets another process bound: systemd
// (socket activation) or the udpd that handed over to this one.
type Adopted struct {
	Spec Spec
	// Files are the sockets, one per worker, all bound to one address
	// (Spec.Address should say it). Adopt duplicates them: the caller
	// closes them.
	Files []*os.File
	// Generation, Created and Bound carry on from the process that handed
	// the listener over; zero values mean 1 and now.
	Generation     uint64
	Created, Bound time.Time
}

// Adopt registers and serves listeners made of inherited sockets. It saves
// nothing: the caller saves (Restore does) or the state file already
// holds them. If one cannot be adopted (a bad spec or socket, an id or
// address taken) none is.
func (m *Manager) Adopt(as []Adopted) ([]Listener, error) {
	m.change.Lock()
	defer m.change.Unlock()
	if m.closed {
		return nil, fmt.Errorf("adopt: %w", ErrClosed)
	}
	if len(m.byID)+len(as) > m.opts.MaxListeners {
		return nil, fmt.Errorf("adopt %d listeners: %w (limit %d)", len(as), ErrQuotaExceeded, m.opts.MaxListeners)
	}
	seen := make(map[string]bool, len(as))
	for _, a := range as {
		if err := ValidateID(a.Spec.ID); err != nil {
			return nil, fmt.Errorf("adopt: %w", err)
		}
		if _, err := ValidateSpec(a.Spec); err != nil {
			return nil, fmt.Errorf("adopt %q: %w", a.Spec.ID, err)
		}
		if _, taken := m.byID[a.Spec.ID]; taken || seen[a.Spec.ID] {
			return nil, fmt.Errorf("adopt %q: %w", a.Spec.ID, ErrAlreadyExists)
		}
		seen[a.Spec.ID] = true
	}
	ls := make([]*listener.Listener, 0, len(as))
	fail := func(err error) ([]Listener, error) {
		for _, l := range ls {
			l.Close()
		}
		return nil, err
	}
	for _, a := range as {
		l, err := listener.FromFiles(a.Files, listener.Config{Policy: m.limits(a.Spec).policy(&m.loops)})
		if err != nil {
			return fail(fmt.Errorf("adopt %q: %w", a.Spec.ID, err))
		}
		ls = append(ls, l)
		if other := m.onAddress(l.Addr()); other != nil {
			return fail(fmt.Errorf("adopt %q on %s: listener %q holds it: %w", a.Spec.ID, l.Addr(), other.spec.ID, ErrAddressInUse))
		}
	}
	now := time.Now()
	es := make([]*entry, 0, len(as))
	for i, a := range as {
		addr, _ := ParseAddress(a.Spec.Address)
		e := &entry{spec: a.Spec, addr: addr, cur: ls[i], groups: []*listener.Listener{ls[i]},
			gen: max(a.Generation, 1), created: a.Created, bound: a.Bound}
		if e.created.IsZero() {
			e.created = now
		}
		if e.bound.IsZero() {
			e.bound = now
		}
		es = append(es, e)
	}
	m.mu.Lock()
	for _, e := range es {
		m.put(e)
	}
	m.updateLoops()
	m.mu.Unlock()
	out := make([]Listener, len(es))
	for i, e := range es {
		out[i] = m.read(e)
	}
	for i, a := range as {
		m.serve(ls[i])
		m.log.Info("listener adopted", "id", a.Spec.ID, "address", ls[i].Addr().String(), "workers", ls[i].Workers())
	}
	return out, nil
}

// Handed is a listener as a hand-over passes it on.
type Handed struct {
	Spec           Spec
	Generation     uint64
	Created, Bound time.Time
	Listener       *listener.Listener // its sockets go to the new process
}

// Freeze prepares a hand-over: changes fail with ErrUpgrading from now on,
// and Freeze waits (until ctx is done) for stops and rebinds in progress
// to finish draining, so each listener is one group of sockets. It returns
// the listeners ordered by id. Thaw undoes it, if the hand-over fails;
// Release completes it.
func (m *Manager) Freeze(ctx context.Context) ([]Handed, error) {
	m.change.Lock()
	err := m.changeErr()
	if err == nil {
		m.frozen = true
	}
	m.change.Unlock()
	if err != nil {
		return nil, fmt.Errorf("freeze: %w", err)
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		m.mu.Lock()
		if m.settledLocked() {
			out := make([]Handed, 0, len(m.byID))
			for _, e := range m.byID {
				out = append(out, Handed{Spec: e.spec, Generation: e.gen, Created: e.created, Bound: e.bound, Listener: e.cur})
			}
			m.mu.Unlock()
			slices.SortFunc(out, func(a, b Handed) int { return strings.Compare(a.Spec.ID, b.Spec.ID) })
			return out, nil
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			m.Thaw()
			return nil, fmt.Errorf("freeze: waiting for listeners to drain: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

// settledLocked: no listener is draining an old group.
func (m *Manager) settledLocked() bool {
	if len(m.stopping) > 0 {
		return false
	}
	for _, e := range m.byID {
		if len(e.groups) != 1 {
			return false
		}
	}
	return true
}

// Thaw accepts changes again after a Freeze whose hand-over failed.
func (m *Manager) Thaw() {
	m.change.Lock()
	defer m.change.Unlock()
	m.frozen = false
}

// Counters are what a hand-over passes on so that totals continue: the
// daemon's start, the counters of listeners stopped before, and each
// listener's own. KernelDrops of the live sockets are left out: the
// kernel keeps counting them on the sockets the new process reads.
type Counters struct {
	Start     time.Time
	Retired   listener.Stats
	Listeners map[string]listener.Stats
}

// Release completes a hand-over after Freeze: every listener stops
// reading (each worker finishes the batch in hand) and closes this
// process's sockets, leaving what they hold queued for the new process;
// the Manager is closed. It returns the final counters.
func (m *Manager) Release() Counters {
	m.change.Lock()
	m.closed = true
	m.change.Unlock()
	m.mu.Lock()
	ids := make([]string, 0, len(m.byID))
	live := make([]counters, 0, len(m.byID))
	for id, e := range m.byID {
		ids = append(ids, id)
		live = append(live, countersOf(e))
	}
	var stopping []counters
	for e := range m.stopping {
		stopping = append(stopping, countersOf(e))
	}
	c := Counters{Start: m.start, Retired: m.retired, Listeners: make(map[string]listener.Stats, len(ids))}
	m.mu.Unlock()

	var wg sync.WaitGroup
	for _, l := range live {
		for _, g := range l.groups {
			wg.Go(func() { g.Release() })
		}
	}
	wg.Wait()
	m.wg.Wait()
	for _, s := range stopping {
		s.read()
		c.Retired = c.Retired.Add(s.stats)
	}
	for i, l := range live {
		s := l.base
		for _, g := range l.groups {
			gs := g.Stats()
			gs.KernelDrops = 0
			s = s.Add(gs)
		}
		c.Listeners[ids[i]] = s
	}
	return c
}

// Continue adds the counters a hand-over passed on, so that totals go on
// from where the old process left them; listeners it does not know are
// counted as retired.
func (m *Manager) Continue(c Counters) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !c.Start.IsZero() {
		m.start = c.Start
	}
	m.retired = m.retired.Add(c.Retired)
	for id, s := range c.Listeners {
		if e, ok := m.byID[id]; ok {
			e.base = e.base.Add(s)
		} else {
			m.retired = m.retired.Add(s)
		}
	}
}
