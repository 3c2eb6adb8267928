package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Manager owns the daemon's listeners. Its methods are safe for concurrent
// use; changes are serialised, and each is saved to the Store before it is
// acknowledged.
//
// Two locks, one rule each:
//   - change serialises the changes (Start, Restore, Stop, Rebind, Adopt,
//     and the first steps of Freeze, Release and Shutdown). A change holds it for the whole of its binds and
//     its save, and releases it before it waits for a drain.
//   - mu guards what readers see: byID, stopping, retired, and the fields of
//     every entry. It is held only to copy or swap memory, never across a
//     bind, a save, a drain or a getsockopt. A read (Get, List, Stats,
//     Specs) takes only mu, copies what it needs and reads the counters
//     after releasing it, so a stuck disk or a slow bind never stalls it.
//
// A change writes shared fields with mu held; fields that only changes
// write (byID, closed, frozen, requests, an entry's spec, addr, cur, gen,
// bound)
// may be read by a change without mu. Order: change before mu.
type Manager struct {
	opts  Options
	log   *slog.Logger
	start time.Time

	change   sync.Mutex
	closed   bool        // guarded by change
	frozen   bool        // a hand-over to a new process is under way; guarded by change
	requests *requestIDs // guarded by change
	// deferred, when set (by Restore), collects the listeners start1
	// binds, for the caller to publish to the loop guard and serve all at
	// once; guarded by change.
	deferred *[]*listener.Listener

	mu       sync.Mutex
	byID     map[string]*entry
	order    []*entry            // byID's entries ordered by id (see put and remove)
	stopping map[*entry]struct{} // stopped, still answering what was queued
	retired  listener.Stats      // counters of listeners stopped for good
	loops    listener.LoopGuard  // sources never answered, shared by every listener

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
		requests: newRequestIDs(maxRequestIDs, maxRequestIDBytes),
	}
	m.updateLoops()
	return m
}

// Start binds a listener and serves it. It is idempotent: starting an id
// that runs with the same address, or (with no id) an address a listener
// already runs on, returns that listener; a request id seen before returns
// the listener it started (request ids are checked with
// ValidateRequestID). With no id, one is made from the port ("udp-12000").
func (m *Manager) Start(ctx context.Context, spec Spec, requestID string) (Listener, error) {
	if err := ValidateRequestID(requestID); err != nil {
		return Listener{}, fmt.Errorf("start: %w", err)
	}
	m.change.Lock()
	defer m.change.Unlock()
	return m.start1(ctx, spec, requestID, true)
}

// Restore starts the listeners of a saved configuration, or the daemon's
// initial ones, and saves the configuration once at the end rather than
// after each (a thousand listeners would otherwise cost a thousand
// fsyncs). If one cannot start, those started are closed and the error
// names it.
func (m *Manager) Restore(ctx context.Context, specs []Spec) ([]Listener, error) {
	m.change.Lock()
	defer m.change.Unlock()
	out := make([]Listener, 0, len(specs))
	undo := func() {
		var gone []*listener.Listener
		m.mu.Lock()
		for _, l := range out {
			if e := m.byID[l.ID]; e != nil {
				m.remove(l.ID)
				gone = append(gone, e.cur)
			}
		}
		m.updateLoops()
		m.mu.Unlock()
		for _, g := range gone {
			g.Close()
		}
	}
	// Publish the loop guard and start serving once, at the end: done per
	// listener, rebuilding the guard's set of own addresses made a restore
	// of n listeners cost O(n²) (minutes at 10,000). Until then the
	// sockets only queue what arrives.
	var bound []*listener.Listener
	m.deferred = &bound
	defer func() { m.deferred = nil }()
	for _, spec := range specs {
		l, err := m.start1(ctx, spec, "", false)
		if err != nil {
			undo()
			return nil, fmt.Errorf("restore: %w", err)
		}
		out = append(out, l)
	}
	if err := m.save(m.specs()); err != nil {
		undo()
		return nil, fmt.Errorf("restore: %w", err)
	}
	m.mu.Lock()
	m.updateLoops()
	m.mu.Unlock()
	for _, l := range bound {
		m.serve(l)
	}
	return out, nil
}

// start1 starts one listener, saving the configuration first if save is
// set. Called with m.change held.
func (m *Manager) start1(ctx context.Context, spec Spec, requestID string, save bool) (Listener, error) {
	addr, err := ValidateSpec(spec)
	if err != nil {
		return Listener{}, fmt.Errorf("start: %w", err)
	}
	if err := m.changeErr(); err != nil {
		return Listener{}, fmt.Errorf("start %s: %w", spec.Address, err)
	}
	if id, ok := m.requests.get(requestID); ok {
		if e, ok := m.byID[id]; ok {
			return m.read(e), nil
		}
	}
	if e := m.byID[spec.ID]; e != nil {
		if e.addr == addr && e.spec.Workers == spec.Workers && sameLimits(e.spec.Limits, spec.Limits) {
			return m.read(e), nil
		}
		return Listener{}, fmt.Errorf("start %q on %s: %w (it runs on %s)", spec.ID, spec.Address, ErrAlreadyExists, e.spec.Address)
	}
	if other := m.onAddress(addr); other != nil {
		if spec.ID == "" && other.spec.Workers == spec.Workers && sameLimits(other.spec.Limits, spec.Limits) {
			return m.read(other), nil
		}
		return Listener{}, fmt.Errorf("start %s: listener %q holds it: %w", spec.Address, other.spec.ID, ErrAddressInUse)
	}
	if len(m.byID) >= m.opts.MaxListeners {
		return Listener{}, fmt.Errorf("start %s: %w (limit %d)", spec.Address, ErrQuotaExceeded, m.opts.MaxListeners)
	}
	if err := m.checkVersion(ctx); err != nil {
		return Listener{}, fmt.Errorf("start %s: %w", spec.Address, err)
	}
	if spec.ID == "" {
		spec.ID = m.newID(addr)
	}
	l, err := m.listen(ctx, addr, spec)
	if err != nil {
		return Listener{}, fmt.Errorf("start %q on %s: %w", spec.ID, spec.Address, err)
	}
	if save {
		if err := m.save(m.specsWith(spec.ID, &spec)); err != nil {
			l.Close()
			return Listener{}, fmt.Errorf("start %q: %w", spec.ID, err)
		}
	}
	now := time.Now()
	e := &entry{spec: spec, addr: addr, cur: l, groups: []*listener.Listener{l}, gen: 1, created: now, bound: now}
	m.mu.Lock()
	m.put(e)
	if m.deferred == nil {
		m.updateLoops()
	}
	m.mu.Unlock()
	m.requests.put(requestID, spec.ID)
	if m.deferred != nil {
		*m.deferred = append(*m.deferred, l)
	} else {
		m.serve(l)
	}
	m.log.Info("listener started", "id", spec.ID, "address", l.Addr().String(), "workers", l.Workers())
	return m.read(e), nil
}

// Stop forgets a listener, answers what its sockets hold until a read
// finds them empty (for up to drain), and closes them. It returns the
// listener as it was at the end, with its final counters.
func (m *Manager) Stop(ctx context.Context, id string, drain time.Duration) (Listener, error) {
	drain, err := drainTimeout(drain)
	if err != nil {
		return Listener{}, fmt.Errorf("stop %q: %w", id, err)
	}
	e, cur, err := m.forget(ctx, id)
	if err != nil {
		return Listener{}, err
	}
	m.drainGroup(ctx, e, cur, drain)
	m.log.Info("listener stopped", "id", id, "address", cur.Addr().String())
	l := m.read(e)
	l.BoundAddress = cur.Addr()
	l.Workers = cur.Workers()
	return l, nil
}

// forget removes listener id from the configuration and saves it. It
// returns the listener's entry and current socket group, which keeps
// answering until drainGroup closes it.
func (m *Manager) forget(ctx context.Context, id string) (*entry, *listener.Listener, error) {
	m.change.Lock()
	defer m.change.Unlock()
	if err := m.changeErr(); err != nil {
		return nil, nil, fmt.Errorf("stop %q: %w", id, err)
	}
	e, ok := m.byID[id]
	if !ok {
		return nil, nil, fmt.Errorf("stop %q: %w", id, ErrNotFound)
	}
	if err := m.checkVersion(ctx); err != nil {
		return nil, nil, fmt.Errorf("stop %q: %w", id, err)
	}
	if err := m.save(m.specsWith(id, nil)); err != nil {
		return nil, nil, fmt.Errorf("stop %q: %w", id, err)
	}
	cur := e.cur
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remove(id)
	e.stopped = true
	e.cur = nil
	m.stopping[e] = struct{}{}
	m.updateLoops()
	return e, cur, nil
}

// Rebind moves a listener to address, keeping its id and counters. The new
// address is bound first: if that fails, the call fails and the listener
// keeps serving where it was. Otherwise the new sockets serve at once and
// the old ones answer what they hold for up to drain before they close;
// Rebind returns once they have.
func (m *Manager) Rebind(ctx context.Context, id, address string, drain time.Duration) (Listener, error) {
	drain, err := drainTimeout(drain)
	if err != nil {
		return Listener{}, fmt.Errorf("rebind %q: %w", id, err)
	}
	addr, err := ParseAddress(address)
	if err != nil {
		return Listener{}, fmt.Errorf("rebind %q: %w", id, err)
	}
	e, old, err := m.move(ctx, id, address, addr)
	if err != nil {
		return Listener{}, err
	}
	if old != nil {
		m.drainGroup(ctx, e, old, drain)
	}
	return m.read(e), nil
}

// move binds address for listener id and makes it the listener's current
// socket group. It returns the group replaced, which still answers until
// drainGroup closes it, or nil when no new sockets were needed.
func (m *Manager) move(ctx context.Context, id, address string, addr netip.AddrPort) (*entry, *listener.Listener, error) {
	m.change.Lock()
	defer m.change.Unlock()
	if err := m.changeErr(); err != nil {
		return nil, nil, fmt.Errorf("rebind %q: %w", id, err)
	}
	e, ok := m.byID[id]
	if !ok {
		return nil, nil, fmt.Errorf("rebind %q: %w", id, ErrNotFound)
	}
	if e.addr == addr {
		return e, nil, nil
	}
	if err := m.checkVersion(ctx); err != nil {
		return nil, nil, fmt.Errorf("rebind %q: %w", id, err)
	}
	spec := e.spec
	spec.Address = address
	other := m.onAddress(addr)
	if other == e {
		// e asked for port 0 and was given this one: keep the sockets and
		// record the fixed address.
		if err := m.save(m.specsWith(id, &spec)); err != nil {
			return nil, nil, fmt.Errorf("rebind %q: %w", id, err)
		}
		m.mu.Lock()
		e.spec, e.addr = spec, addr
		m.mu.Unlock()
		return e, nil, nil
	}
	if other != nil {
		return nil, nil, fmt.Errorf("rebind %q to %s: listener %q holds it: %w", id, address, other.spec.ID, ErrAddressInUse)
	}
	nl, err := m.listen(ctx, addr, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("rebind %q to %s: %w", id, address, err)
	}
	if err := m.save(m.specsWith(id, &spec)); err != nil {
		nl.Close()
		return nil, nil, fmt.Errorf("rebind %q: %w", id, err)
	}
	old := e.cur
	m.mu.Lock()
	e.cur, e.addr, e.spec, e.bound = nl, addr, spec, time.Now()
	e.groups = append(e.groups, nl)
	e.gen++
	m.updateLoops()
	m.mu.Unlock()
	m.serve(nl)
	m.log.Info("listener rebound", "id", id, "from", old.Addr().String(), "to", nl.Addr().String())
	return e, old, nil
}

// Shutdown stops every listener in this order: no new change is accepted;
// every listener answers what its sockets hold until a read finds them
// empty or ctx is done; the sockets close. A drain cut short by ctx is not
// an error. The saved configuration is left as it was, so a restarted
// daemon can resume it.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.change.Lock()
	m.closed = true
	var groups []*listener.Listener
	m.mu.Lock()
	for _, e := range m.byID {
		groups = append(groups, e.groups...)
	}
	for e := range m.stopping {
		groups = append(groups, e.groups...)
	}
	m.mu.Unlock()
	m.change.Unlock()

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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// changeErr says why no change is accepted now, if none is. Called with
// m.change held.
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

// drainGroup lets socket group g of entry e answer what it holds for up
// to drain, closes it, and moves its counters into e.base. It takes no
// lock while it waits.
func (m *Manager) drainGroup(ctx context.Context, e *entry, g *listener.Listener, drain time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	g.Shutdown(ctx)
	final := g.Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	e.base = e.base.Add(final)
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

// put adds e to byID and order. Called with m.change and m.mu held.
func (m *Manager) put(e *entry) {
	m.byID[e.spec.ID] = e
	i, found := m.find(e.spec.ID)
	if found {
		m.order[i] = e
		return
	}
	m.order = slices.Insert(m.order, i, e)
}

// remove deletes listener id from byID and order. Called with m.change
// and m.mu held.
func (m *Manager) remove(id string) {
	delete(m.byID, id)
	if i, found := m.find(id); found {
		m.order = slices.Delete(m.order, i, i+1)
	}
}

// find is where id is, or would be, in order.
func (m *Manager) find(id string) (int, bool) {
	return slices.BinarySearchFunc(m.order, id, func(e *entry, id string) int { return strings.Compare(e.spec.ID, id) })
}

// specs returns the configuration of every listener, ordered by id.
// Called with m.change or m.mu held.
func (m *Manager) specs() []Spec {
	specs := make([]Spec, len(m.order))
	for i, e := range m.order {
		specs[i] = e.spec
	}
	return specs
}

// specsWith returns the configuration as it will be once listener id has
// spec (nil: once it is gone). Called with m.change held.
func (m *Manager) specsWith(id string, spec *Spec) []Spec {
	specs := m.specs()
	i, found := m.find(id)
	switch {
	case spec == nil && found:
		specs = slices.Delete(specs, i, i+1)
	case spec != nil && found:
		specs[i] = *spec
	case spec != nil:
		specs = slices.Insert(specs, i, *spec)
	}
	return specs
}

// save writes specs to the Store. Called with m.change held and m.mu not.
func (m *Manager) save(specs []Spec) error {
	if m.opts.Store == nil {
		return nil
	}
	if err := m.opts.Store.Save(specs); err != nil {
		return fmt.Errorf("%w: %w", ErrStateSave, err)
	}
	return nil
}
