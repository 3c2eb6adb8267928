package manager

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Action is what applying a configuration does to one listener.
type Action int

// Actions, in the order a plan lists them for one listener.
const (
	ActionStart  Action = iota + 1 // a listener the configuration adds
	ActionUpdate                   // new limits in place, or a new address (bound first)
	ActionStop                     // a listener the configuration no longer has (prune)
)

// Symbol is the action's mark in a printed plan: +, ~ or -.
func (a Action) Symbol() string {
	switch a {
	case ActionStart:
		return "+"
	case ActionUpdate:
		return "~"
	case ActionStop:
		return "-"
	}
	return "?"
}

// FieldChange is one field an update changes, with printable values.
type FieldChange struct {
	Field    string // "address", "limits.per_second", …
	From, To string
}

// Change is one listener's part of a plan.
type Change struct {
	Action Action
	ID     string
	Spec   Spec          // as configured after the change (for a stop: before)
	Fields []FieldChange // for an update
}

// Plan is what Apply did, or with DryRun would do: the changes ordered by
// listener id, and the configuration's version before and after.
type Plan struct {
	Changes       []Change
	From, Version string
}

// ApplyOptions modify Apply.
type ApplyOptions struct {
	// Prune stops the listeners the configuration does not list; without
	// it they keep running.
	Prune bool
	// DryRun returns the plan and changes nothing.
	DryRun bool
	// Drain is how long moved and stopped listeners answer what their
	// old sockets hold (0: DefaultDrainTimeout).
	Drain time.Duration
}

// step is a change being made: the plan's entry and what it needs.
type step struct {
	Change
	addr  netip.AddrPort
	e     *entry             // the listener changed; nil for a start
	bind  bool               // needs new sockets (a start, or a move)
	group *listener.Listener // the new sockets, once bound
}

// Apply makes the daemon run the listeners specs describe, converging in
// one step: every new listener and every new address is bound first; if
// any bind fails, nothing changes and the error names the listener and the
// field. Then the configuration is saved (once), the new sockets serve,
// changed limits apply in place, and (with Prune) listeners that specs do
// not list stop. Moved and stopped listeners' old sockets drain; Apply
// returns once they have. Listeners that specs lists unchanged keep their
// sockets and counters. A listener's workers cannot change while it runs.
func (m *Manager) Apply(ctx context.Context, specs []Spec, opts ApplyOptions) (Plan, error) {
	drain, err := drainTimeout(opts.Drain)
	if err != nil {
		return Plan{}, fmt.Errorf("apply: %w", err)
	}
	plan, olds, err := m.apply(ctx, specs, opts) // its errors say "apply: …"
	if err != nil {
		return Plan{}, err
	}
	var wg sync.WaitGroup
	for _, o := range olds {
		wg.Go(func() { m.drainGroup(ctx, o.e, o.g, drain) })
	}
	wg.Wait()
	return plan, nil
}

// oldGroup is a socket group an apply replaced or stopped, to drain.
type oldGroup struct {
	e *entry
	g *listener.Listener
}

// apply makes the changes under m.change and returns the groups to drain.
func (m *Manager) apply(ctx context.Context, specs []Spec, opts ApplyOptions) (Plan, []oldGroup, error) {
	m.change.Lock()
	defer m.change.Unlock()
	if err := m.changeErr(); err != nil {
		return Plan{}, nil, fmt.Errorf("apply: %w", err)
	}
	steps, err := m.plan(specs, opts.Prune)
	if err != nil {
		return Plan{}, nil, fmt.Errorf("apply: %w", err)
	}
	final := slices.Clone(specs)
	if !opts.Prune {
		listed := make(map[string]bool, len(specs))
		for _, s := range specs {
			listed[s.ID] = true
		}
		for id, e := range m.byID {
			if !listed[id] { // a search of specs per listener cost O(n·m)
				final = append(final, e.spec)
			}
		}
	}
	slices.SortFunc(final, func(a, b Spec) int { return strings.Compare(a.ID, b.ID) })
	plan := Plan{From: VersionOf(m.specs()), Version: VersionOf(final), Changes: make([]Change, len(steps))}
	for i, s := range steps {
		plan.Changes[i] = s.Change
	}
	if len(steps) == 0 {
		plan.Version = plan.From // an apply that changes nothing changes no version
		return plan, nil, nil
	}
	if err := m.checkVersion(ctx); err != nil {
		return Plan{}, nil, fmt.Errorf("apply: %w", err)
	}
	if opts.DryRun {
		return plan, nil, nil
	}

	// 1. Bind everything new; on any failure, close what was bound.
	closeNew := func() {
		for _, s := range steps {
			if s.group != nil {
				s.group.Close()
			}
		}
	}
	for i := range steps {
		s := &steps[i]
		if !s.bind {
			continue
		}
		g, err := m.listen(ctx, s.addr, s.Spec)
		if err != nil {
			closeNew()
			return Plan{}, nil, fmt.Errorf("apply: listener %q: %w", s.ID,
				&FieldError{Field: "address", Value: s.Spec.Address, Reason: "cannot bind: " + err.Error(), Err: err})
		}
		s.group = g
	}
	// 2. Save once.
	if err := m.save(final); err != nil {
		closeNew()
		return Plan{}, nil, fmt.Errorf("apply: %w", err)
	}
	// 3. Publish: starts, moves and updates, then stops.
	var olds []oldGroup
	now := time.Now()
	m.mu.Lock()
	for _, s := range steps {
		switch {
		case s.Action == ActionStart:
			m.put(&entry{spec: s.Spec, addr: s.addr, cur: s.group, groups: []*listener.Listener{s.group}, gen: 1, created: now, bound: now})
		case s.Action == ActionStop:
			m.remove(s.ID)
			s.e.stopped = true
			m.stopping[s.e] = struct{}{}
			olds = append(olds, oldGroup{s.e, s.e.cur})
			s.e.cur = nil
		case s.group != nil: // moved
			olds = append(olds, oldGroup{s.e, s.e.cur})
			s.e.cur, s.e.addr, s.e.spec, s.e.bound = s.group, s.addr, s.Spec, now
			s.e.groups = append(s.e.groups, s.group)
			s.e.gen++
		default: // in place
			limits := s.Spec.Limits
			s.e.spec, s.e.addr = s.Spec, s.addr
			m.setSpecLimits(s.e, limits)
		}
	}
	m.updateLoops()
	m.mu.Unlock()
	for _, s := range steps {
		if s.group != nil {
			m.serve(s.group)
		}
		m.log.Info("listener applied", "change", s.Action.Symbol(), "id", s.ID, "address", s.Spec.Address)
	}
	return plan, olds, nil
}

// plan compares specs with the running listeners and returns the steps,
// ordered by id. It checks every spec and names the listener and the
// field of the first that is wrong. Called with m.change held.
func (m *Manager) plan(specs []Spec, prune bool) ([]step, error) {
	var steps []step
	ids := make(map[string]bool, len(specs))
	addrs := make(map[netip.AddrPort]string, len(specs))
	starts := 0
	for i, spec := range specs {
		if spec.ID == "" {
			return nil, fmt.Errorf("listener %d: %w", i+1, &FieldError{Field: "id", Reason: "is required in a configuration", Err: ErrInvalidID})
		}
		addr, err := ValidateSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", spec.ID, err)
		}
		if ids[spec.ID] {
			return nil, fmt.Errorf("listener %q: %w", spec.ID, &FieldError{Field: "id", Value: spec.ID, Reason: "is listed twice", Err: ErrInvalidArgument})
		}
		ids[spec.ID] = true
		if other, dup := addrs[addr]; dup && addr.Port() != 0 {
			return nil, fmt.Errorf("listener %q: %w", spec.ID, &FieldError{Field: "address", Value: spec.Address,
				Reason: fmt.Sprintf("listener %q asks for it too", other), Err: ErrAddressInUse})
		}
		addrs[addr] = spec.ID

		e := m.byID[spec.ID]
		if holder := m.onAddress(addr); holder != nil && holder != e {
			return nil, fmt.Errorf("listener %q: %w", spec.ID, &FieldError{Field: "address", Value: spec.Address,
				Reason: fmt.Sprintf("listener %q holds it", holder.spec.ID), Err: ErrAddressInUse})
		}
		if e == nil {
			steps = append(steps, step{Change: Change{Action: ActionStart, ID: spec.ID, Spec: spec}, addr: addr, bind: true})
			starts++
			continue
		}
		if spec.Workers != e.spec.Workers {
			return nil, fmt.Errorf("listener %q: %w", spec.ID, &FieldError{Field: "workers", Value: strconv.Itoa(spec.Workers),
				Reason: fmt.Sprintf("cannot change while the listener runs (it has %d): remove it, apply with prune, then add it back", e.spec.Workers),
				Err:    ErrInvalidArgument})
		}
		s := step{Change: Change{Action: ActionUpdate, ID: spec.ID, Spec: spec}, addr: addr, e: e}
		if spec.Address != e.spec.Address {
			s.Fields = append(s.Fields, FieldChange{Field: "address", From: e.spec.Address, To: spec.Address})
			// The same address written otherwise, or the port a port-0
			// listener was given, keeps the sockets.
			s.bind = addr != e.addr && (e.cur == nil || addr != e.cur.Addr())
		}
		if !sameLimits(spec.Limits, e.spec.Limits) {
			fields := limitChanges(m.limits(e.spec), m.limits(spec))
			if len(fields) == 0 {
				fields = []FieldChange{{Field: "limits", From: limitsSource(e.spec.Limits), To: limitsSource(spec.Limits)}}
			}
			s.Fields = append(s.Fields, fields...)
		}
		if len(s.Fields) > 0 {
			steps = append(steps, s)
		}
	}
	stops := 0
	if prune {
		for id, e := range m.byID {
			if !ids[id] {
				steps = append(steps, step{Change: Change{Action: ActionStop, ID: id, Spec: e.spec}, e: e})
				stops++
			}
		}
	}
	if n := len(m.byID) + starts - stops; n > m.opts.MaxListeners {
		return nil, fmt.Errorf("%d listeners: %w (limit %d)", n, ErrQuotaExceeded, m.opts.MaxListeners)
	}
	slices.SortFunc(steps, func(a, b step) int { return strings.Compare(a.ID, b.ID) })
	return steps, nil
}

func limitsSource(l *Limits) string {
	if l == nil {
		return "daemon defaults"
	}
	return "own"
}
