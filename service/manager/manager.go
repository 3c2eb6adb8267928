package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Defaults and limits.
const (
	DefaultMaxListeners = 1024
	DefaultDrainTimeout = time.Second
	MaxDrainTimeout     = time.Minute
	maxRequestIDs       = 4096
)

// State is where a listener is in its life.
type State int

// States.
const (
	StateRunning State = iota + 1
	StateStopped
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	}
	return "unknown"
}

// Spec is a listener's durable configuration: what a Store saves and what
// a restarted daemon starts again.
type Spec struct {
	ID      string  `json:"id"`
	Address string  `json:"address"`
	Workers int     `json:"workers,omitempty"` // 0: the daemon's default
	Limits  *Limits `json:"limits,omitempty"`  // nil: the daemon's default
}

// Listener describes a listener at one instant.
type Listener struct {
	ID           string
	Address      string         // as asked for
	BoundAddress netip.AddrPort // port 0 resolved
	State        State
	Generation   uint64 // 1 after start, +1 per rebind
	Created      time.Time
	Bound        time.Time
	Workers      int
	Limits       Limits // in force
	Stats        listener.Stats
}

// Store saves the listeners' configuration. Save must be atomic: after a
// crash the store holds either the old or the new list.
type Store interface {
	Save(specs []Spec) error
}

// Options configure a Manager.
type Options struct {
	Store        Store        // nil saves nothing
	Logger       *slog.Logger // nil discards
	MaxListeners int          // 0 means DefaultMaxListeners
	Workers      int          // default sockets per listener; 0 means GOMAXPROCS
	Limits       Limits       // for listeners started without their own
	// LoopPorts are source ports never answered, besides
	// listener.ClassicResponderPorts: the ports of other responders, such
	// as other udpd daemons on ports other than 12000, so that the two
	// cannot be made to answer each other. The daemon's own listener
	// addresses are never answered either.
	LoopPorts []uint16
}

// Manager owns the daemon's listeners. Its methods are safe for concurrent
// use; changes are serialised, and each is saved to the Store before it is
// acknowledged.
type Manager struct {
	opts  Options
	log   *slog.Logger
	start time.Time

	mu       sync.Mutex
	byID     map[string]*entry
	stopping map[*entry]struct{} // stopped, still answering what was queued
	retired  listener.Stats      // counters of listeners stopped for good
	requests map[string]string   // request id → listener id
	reqOrder []string
	closed   bool
	frozen   bool               // a hand-over to a new process is under way
	loops    listener.LoopGuard // sources never answered, shared by every listener

	wg sync.WaitGroup // Serve goroutines
}

// entry is one listener id. Its socket groups are the current one and any
// still draining after a rebind; base holds the counters of groups gone.
type entry struct {
	spec    Spec
	addr    netip.AddrPort
	cur     *listener.Listener
	groups  []*listener.Listener // cur and the draining ones
	base    listener.Stats
	gen     uint64
	created time.Time
	bound   time.Time
	stopped bool
}

// New returns a Manager with no listeners.
func New(opts Options) *Manager {
	if opts.MaxListeners <= 0 {
		opts.MaxListeners = DefaultMaxListeners
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		opts:     opts,
		log:      log,
		start:    time.Now(),
		byID:     make(map[string]*entry),
		stopping: make(map[*entry]struct{}),
		requests: make(map[string]string),
	}
	m.updateLoops()
	return m
}

// Start binds a listener and serves it. It is idempotent: starting an id
// that runs with the same address, or (with no id) an address a listener
// already runs on, returns that listener; a request id seen before returns
// the listener it started. With no id, one is made from the port
// ("udp-12000").
func (m *Manager) Start(ctx context.Context, spec Spec, requestID string) (Listener, error) {
	return m.startOne(ctx, spec, requestID, true)
}

// Restore starts the listeners of a saved configuration, or the daemon's
// initial ones, and saves the configuration once at the end rather than
// after each (a thousand listeners would otherwise cost a thousand
// fsyncs). If one cannot start, those started are closed and the error
// names it.
func (m *Manager) Restore(ctx context.Context, specs []Spec) ([]Listener, error) {
	out := make([]Listener, 0, len(specs))
	undo := func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, l := range out {
			if e := m.byID[l.ID]; e != nil {
				delete(m.byID, l.ID)
				e.cur.Close()
			}
		}
		m.updateLoops()
	}
	for _, spec := range specs {
		l, err := m.startOne(ctx, spec, "", false)
		if err != nil {
			undo()
			return nil, err
		}
		out = append(out, l)
	}
	m.mu.Lock()
	err := m.save()
	m.mu.Unlock()
	if err != nil {
		undo()
		return nil, fmt.Errorf("restore: %w", err)
	}
	return out, nil
}

func (m *Manager) startOne(ctx context.Context, spec Spec, requestID string, save bool) (Listener, error) {
	addr, err := ValidateSpec(spec)
	if err != nil {
		return Listener{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.changeErr(); err != nil {
		return Listener{}, err
	}
	if id, ok := m.requests[requestID]; ok && requestID != "" {
		if e, ok := m.byID[id]; ok {
			return m.describe(e), nil
		}
	}
	if e := m.byID[spec.ID]; e != nil {
		if e.addr == addr && e.spec.Workers == spec.Workers && sameLimits(e.spec.Limits, spec.Limits) {
			return m.describe(e), nil
		}
		return Listener{}, fmt.Errorf("start %q on %s: %w (it runs on %s)", spec.ID, spec.Address, ErrAlreadyExists, e.spec.Address)
	}
	if other := m.onAddress(addr); other != nil {
		if spec.ID == "" && other.spec.Workers == spec.Workers && sameLimits(other.spec.Limits, spec.Limits) {
			return m.describe(other), nil
		}
		return Listener{}, fmt.Errorf("start %s: listener %q holds it: %w", spec.Address, other.spec.ID, ErrAddressInUse)
	}
	if len(m.byID) >= m.opts.MaxListeners {
		return Listener{}, fmt.Errorf("start %s: %w (limit %d)", spec.Address, ErrQuotaExceeded, m.opts.MaxListeners)
	}
	if spec.ID == "" {
		spec.ID = m.newID(addr)
	}
	l, err := m.listen(ctx, addr, spec)
	if err != nil {
		return Listener{}, fmt.Errorf("start %q on %s: %w", spec.ID, spec.Address, err)
	}
	now := time.Now()
	e := &entry{spec: spec, addr: addr, cur: l, groups: []*listener.Listener{l}, gen: 1, created: now, bound: now}
	m.byID[spec.ID] = e
	if save {
		if err := m.save(); err != nil {
			delete(m.byID, spec.ID)
			l.Close()
			return Listener{}, fmt.Errorf("start %q: %w", spec.ID, err)
		}
	}
	m.remember(requestID, spec.ID)
	m.updateLoops()
	m.serve(l)
	m.log.Info("listener started", "id", spec.ID, "address", l.Addr().String(), "workers", l.Workers())
	return m.describe(e), nil
}

// ValidateSpec checks every field of spec (an empty ID is valid: Start
// makes one) and returns the parsed address. Its errors are *FieldError.
func ValidateSpec(spec Spec) (netip.AddrPort, error) {
	if spec.ID != "" {
		if err := ValidateID(spec.ID); err != nil {
			return netip.AddrPort{}, err
		}
	}
	if spec.Workers < 0 || spec.Workers > 1024 {
		return netip.AddrPort{}, &FieldError{Field: "workers", Value: strconv.Itoa(spec.Workers), Reason: "must be from 0 to 1024", Err: ErrInvalidArgument}
	}
	addr, err := ParseAddress(spec.Address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if spec.Limits != nil {
		if err := spec.Limits.Validate(); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return addr, nil
}

// Stop forgets a listener, answers what its sockets hold until a read
// finds them empty (for up to drain), and closes them. It returns the
// listener as it was at the end, with its final counters.
func (m *Manager) Stop(ctx context.Context, id string, drain time.Duration) (Listener, error) {
	drain, err := drainTimeout(drain)
	if err != nil {
		return Listener{}, err
	}
	m.mu.Lock()
	e, ok := m.byID[id]
	if err := m.changeErr(); !ok || err != nil {
		m.mu.Unlock()
		if err != nil {
			return Listener{}, err
		}
		return Listener{}, fmt.Errorf("stop %q: %w", id, ErrNotFound)
	}
	delete(m.byID, id)
	if err := m.save(); err != nil {
		m.byID[id] = e
		m.mu.Unlock()
		return Listener{}, fmt.Errorf("stop %q: %w", id, err)
	}
	e.stopped = true
	m.stopping[e] = struct{}{}
	cur := e.cur
	e.cur = nil
	m.updateLoops()
	m.mu.Unlock()

	m.shutdown(ctx, e, cur, drain)
	m.log.Info("listener stopped", "id", id, "address", cur.Addr().String())

	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.describe(e)
	l.BoundAddress = cur.Addr()
	l.Workers = cur.Workers()
	return l, nil
}

// Rebind moves a listener to address, keeping its id and counters. The new
// address is bound first: if that fails, the call fails and the listener
// keeps serving where it was. Otherwise the new sockets serve at once and
// the old ones answer what they hold for up to drain before they close;
// Rebind returns once they have.
func (m *Manager) Rebind(ctx context.Context, id, address string, drain time.Duration) (Listener, error) {
	drain, err := drainTimeout(drain)
	if err != nil {
		return Listener{}, err
	}
	addr, err := ParseAddress(address)
	if err != nil {
		return Listener{}, err
	}
	m.mu.Lock()
	if err := m.changeErr(); err != nil {
		m.mu.Unlock()
		return Listener{}, err
	}
	e, ok := m.byID[id]
	if !ok {
		m.mu.Unlock()
		return Listener{}, fmt.Errorf("rebind %q: %w", id, ErrNotFound)
	}
	if e.addr == addr {
		defer m.mu.Unlock()
		return m.describe(e), nil
	}
	other := m.onAddress(addr)
	if other == e {
		// e asked for port 0 and was given this one: keep the sockets and
		// record the fixed address.
		oldSpec, oldAddr := e.spec, e.addr
		e.spec.Address, e.addr = address, addr
		if err := m.save(); err != nil {
			e.spec, e.addr = oldSpec, oldAddr
			m.mu.Unlock()
			return Listener{}, fmt.Errorf("rebind %q: %w", id, err)
		}
		defer m.mu.Unlock()
		return m.describe(e), nil
	}
	if other != nil {
		m.mu.Unlock()
		return Listener{}, fmt.Errorf("rebind %q to %s: listener %q holds it: %w", id, address, other.spec.ID, ErrAddressInUse)
	}
	nl, err := m.listen(ctx, addr, e.spec)
	if err != nil {
		m.mu.Unlock()
		return Listener{}, fmt.Errorf("rebind %q to %s: %w", id, address, err)
	}
	old, oldSpec, oldAddr, oldBound := e.cur, e.spec, e.addr, e.bound
	e.cur, e.addr, e.spec.Address, e.bound = nl, addr, address, time.Now()
	e.groups = append(e.groups, nl)
	if err := m.save(); err != nil {
		e.cur, e.addr, e.spec, e.bound = old, oldAddr, oldSpec, oldBound
		e.groups = slices.DeleteFunc(e.groups, func(g *listener.Listener) bool { return g == nl })
		nl.Close()
		m.mu.Unlock()
		return Listener{}, fmt.Errorf("rebind %q: %w", id, err)
	}
	e.gen++
	m.updateLoops()
	m.serve(nl)
	m.mu.Unlock()
	m.log.Info("listener rebound", "id", id, "from", old.Addr().String(), "to", nl.Addr().String())

	m.shutdown(ctx, e, old, drain)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.describe(e), nil
}

// Get returns one listener.
func (m *Manager) Get(id string) (Listener, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.byID[id]
	if !ok {
		return Listener{}, fmt.Errorf("get %q: %w", id, ErrNotFound)
	}
	return m.describe(e), nil
}

// List returns up to limit listeners ordered by id, starting after the id
// after (empty: from the first), and whether more follow.
func (m *Manager) List(after string, limit int) ([]Listener, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.byID))
	for id := range m.byID {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	more := limit > 0 && len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	out := make([]Listener, len(ids))
	for i, id := range ids {
		out[i] = m.describe(m.byID[id])
	}
	return out, more
}

// ListenerStats are one listener's counters.
type ListenerStats struct {
	ID    string
	Stats listener.Stats
}

// Stats returns the counters of listener id (all listeners when id is
// empty, ordered by id) and the daemon's totals, which include every
// listener stopped since the Manager was made.
func (m *Manager) Stats(id string) (total listener.Stats, per []ListenerStats, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	total = m.retired
	total.Start = m.start
	for e := range m.stopping {
		total = total.Add(e.stats())
	}
	for _, e := range m.byID {
		total = total.Add(e.stats())
	}
	total.Start = m.start
	if id != "" {
		e, ok := m.byID[id]
		if !ok {
			return listener.Stats{}, nil, fmt.Errorf("stats %q: %w", id, ErrNotFound)
		}
		return total, []ListenerStats{{id, e.stats()}}, nil
	}
	per = make([]ListenerStats, 0, len(m.byID))
	for id, e := range m.byID {
		per = append(per, ListenerStats{id, e.stats()})
	}
	slices.SortFunc(per, func(a, b ListenerStats) int { return strings.Compare(a.ID, b.ID) })
	return total, per, nil
}

// Specs returns the configuration of every listener, ordered by id.
func (m *Manager) Specs() []Spec {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.specs()
}

// Shutdown stops every listener in this order: no new change is accepted;
// every listener answers what its sockets hold until a read finds them
// empty or ctx is done; the sockets close. A drain cut short by ctx is not
// an error. The saved configuration is left as it was, so a restarted
// daemon can resume it.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	var groups []*listener.Listener
	for _, e := range m.byID {
		groups = append(groups, e.groups...)
	}
	for e := range m.stopping {
		groups = append(groups, e.groups...)
	}
	m.mu.Unlock()

	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.Shutdown(ctx)
		}()
	}
	wg.Wait()
	// Every socket is closed now, so the Serve goroutines end at once.
	m.wg.Wait()
	return errors.Join(errs...)
}

// changeErr says why no change is accepted now, if none is; called with
// m.mu held.
func (m *Manager) changeErr() error {
	switch {
	case m.closed:
		return ErrClosed
	case m.frozen:
		return ErrUpgrading
	}
	return nil
}

// listen binds addr for spec and classifies a failure.
func (m *Manager) listen(ctx context.Context, addr netip.AddrPort, spec Spec) (*listener.Listener, error) {
	if err := checkLocal(addr); err != nil {
		return nil, err
	}
	workers := spec.Workers
	if workers == 0 {
		workers = m.opts.Workers
	}
	l, err := listener.Listen(ctx, listener.Config{Addr: addr, Workers: workers, Policy: m.limits(spec).policy(&m.loops)})
	if err != nil {
		return nil, classifyBind(err)
	}
	return l, nil
}

func (m *Manager) serve(l *listener.Listener) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		l.Serve()
	}()
}

// shutdown drains group g of entry e for up to drain, then moves its
// counters into e.base. Called without m.mu.
func (m *Manager) shutdown(ctx context.Context, e *entry, g *listener.Listener, drain time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	g.Shutdown(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	e.base = e.base.Add(g.Stats())
	e.groups = slices.DeleteFunc(e.groups, func(x *listener.Listener) bool { return x == g })
	m.updateLoops()
	if e.stopped && len(e.groups) == 0 {
		delete(m.stopping, e)
		m.retired = m.retired.Add(e.base)
	}
}

// limits are the limits in force for spec.
func (m *Manager) limits(spec Spec) Limits {
	if spec.Limits != nil {
		return *spec.Limits
	}
	return m.opts.Limits
}

func sameLimits(a, b *Limits) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

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

// describe must be called with m.mu held.
func (m *Manager) describe(e *entry) Listener {
	l := Listener{
		ID:         e.spec.ID,
		Address:    e.spec.Address,
		State:      StateRunning,
		Generation: e.gen,
		Created:    e.created,
		Bound:      e.bound,
		Limits:     m.limits(e.spec),
		Stats:      e.stats(),
	}
	if e.stopped {
		l.State = StateStopped
	}
	if e.cur != nil {
		l.BoundAddress = e.cur.Addr()
		l.Workers = e.cur.Workers()
	}
	return l
}

func (e *entry) stats() listener.Stats {
	s := e.base
	for _, g := range e.groups {
		s = s.Add(g.Stats())
	}
	return s
}

// onAddress returns the listener asked to run on addr (port 0 never
// matches: each asks for a port of its own).
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

func (m *Manager) remember(requestID, id string) {
	if requestID == "" {
		return
	}
	if _, seen := m.requests[requestID]; seen {
		m.requests[requestID] = id // reused after its listener went: keep one entry
		return
	}
	if len(m.reqOrder) >= maxRequestIDs {
		delete(m.requests, m.reqOrder[0])
		m.reqOrder = m.reqOrder[1:]
	}
	m.requests[requestID] = id
	m.reqOrder = append(m.reqOrder, requestID)
}

func (m *Manager) specs() []Spec {
	specs := make([]Spec, 0, len(m.byID))
	for _, e := range m.byID {
		specs = append(specs, e.spec)
	}
	slices.SortFunc(specs, func(a, b Spec) int { return strings.Compare(a.ID, b.ID) })
	return specs
}

// save writes the configuration; called with m.mu held.
func (m *Manager) save() error {
	if m.opts.Store == nil {
		return nil
	}
	if err := m.opts.Store.Save(m.specs()); err != nil {
		return fmt.Errorf("%w: %w", ErrStateSave, err)
	}
	return nil
}

func drainTimeout(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0 || d > MaxDrainTimeout:
		return 0, &FieldError{Field: "drain_timeout", Value: d.String(), Reason: "must be from 0 to 1m", Err: ErrInvalidArgument}
	case d == 0:
		return DefaultDrainTimeout, nil
	}
	return d, nil
}
