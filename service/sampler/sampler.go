// Package sampler reads the daemon's counters once per tick and shares
// each reading with every watcher (the admin API's WatchStats streams) and
// with a history of one sample per second (the status page).
//
// Ticks lie on one grid (every 100 ms by default, counted from New), and a
// watcher's interval is rounded to a whole number of ticks, so however many
// watchers there are and whatever intervals they ask for, the counters are
// read at most once per tick, and only on ticks where someone is due. A
// snapshot is shared, never copied: receivers must not change it. The
// kernel's drop counts, a system call per socket, are read at most once a
// second; the ticks between carry the last counts.
//
// sampler never imports gRPC or protobuf; the admin edge translates.
package sampler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udpd/udpd/service/manager"
)

// Defaults.
const (
	DefaultTick             = 100 * time.Millisecond
	DefaultMaxWatchers      = 64
	DefaultHistoryListeners = 1000
)

// Errors.
var (
	// ErrTooManyWatchers: Options.MaxWatchers watchers already.
	ErrTooManyWatchers = errors.New("too many watchers")
	// ErrStopped: Run has returned.
	ErrStopped = errors.New("sampler stopped")
)

// Source is what a Sampler reads: a *manager.Manager.
type Source interface {
	Snapshot() manager.Snapshot
}

// quickSource is a Source that can also read without system calls, its
// kernel drop counts as of the last Snapshot (a *manager.Manager).
type quickSource interface {
	QuickSnapshot() manager.Snapshot
}

// Options configure a Sampler.
type Options struct {
	Tick        time.Duration // the grid; 0 means DefaultTick
	MaxWatchers int           // 0 means DefaultMaxWatchers
	// History is how long one sample per second is kept (the status page
	// keeps 15 minutes); 0 keeps none and reads nothing between watchers.
	History time.Duration
	// HistoryListeners bounds how many listeners have a history (the
	// first ones seen); 0 means DefaultHistoryListeners. The total is
	// always kept.
	HistoryListeners int
}

// Sampler shares counter readings. Its methods are safe for concurrent
// use.
type Sampler struct {
	src     Source
	opts    Options
	epoch   time.Time // tick 0
	now     func() time.Time
	perSec  int64 // ticks per history sample
	wake    chan struct{}
	reads   atomic.Uint64
	latestP atomic.Pointer[manager.Snapshot]

	mu       sync.Mutex
	watchers map[*Watcher]struct{}
	stopped  bool
	histNext int64 // tick of the next history sample
	lastFull int64 // tick of the last full Snapshot; only Run's goroutine uses it

	hmu  sync.Mutex
	hist *history // nil without Options.History
}

// New returns a Sampler over src; it samples while Run runs.
func New(src Source, opts Options) *Sampler {
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.MaxWatchers <= 0 {
		opts.MaxWatchers = DefaultMaxWatchers
	}
	if opts.HistoryListeners <= 0 {
		opts.HistoryListeners = DefaultHistoryListeners
	}
	s := &Sampler{
		src:      src,
		opts:     opts,
		epoch:    time.Now(),
		now:      time.Now,
		perSec:   max(1, int64(time.Second/opts.Tick)),
		wake:     make(chan struct{}, 1),
		watchers: make(map[*Watcher]struct{}),
		lastFull: math.MinInt64 / 2,
	}
	if opts.History > 0 {
		s.hist = newHistory(int(max(opts.History/time.Second, 1)), opts.HistoryListeners)
	}
	return s
}

// Watcher receives a shared snapshot every interval. Its channel holds
// the latest one: a receiver that falls behind skips snapshots rather
// than delaying anyone. The channel is closed when the Sampler stops.
type Watcher struct {
	s     *Sampler
	every int64 // ticks between snapshots
	next  int64 // the tick it is next due at; guarded by s.mu
	c     chan *manager.Snapshot
}

// C delivers the snapshots.
func (w *Watcher) C() <-chan *manager.Snapshot { return w.c }

// Close stops the deliveries and frees the watcher's place.
func (w *Watcher) Close() {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	delete(w.s.watchers, w)
}

// Watch returns a watcher that receives a snapshot at the next tick, then
// one per interval (rounded to whole ticks, at least one). It fails with
// ErrTooManyWatchers when Options.MaxWatchers watch already, and with
// ErrStopped once Run has returned.
func (s *Sampler) Watch(interval time.Duration) (*Watcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, fmt.Errorf("watch: %w", ErrStopped)
	}
	if len(s.watchers) >= s.opts.MaxWatchers {
		return nil, fmt.Errorf("watch: %d watchers already, the most allowed: %w", len(s.watchers), ErrTooManyWatchers)
	}
	w := &Watcher{
		s:     s,
		every: max(1, int64((interval+s.opts.Tick/2)/s.opts.Tick)),
		next:  s.index(s.now()) + 1,
		c:     make(chan *manager.Snapshot, 1),
	}
	s.watchers[w] = struct{}{}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return w, nil
}

// Watchers is the number of watchers now.
func (s *Sampler) Watchers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// Reads is how many times the counters have been read.
func (s *Sampler) Reads() uint64 { return s.reads.Load() }

// Latest is the last snapshot read, or nil before the first.
func (s *Sampler) Latest() *manager.Snapshot { return s.latestP.Load() }

// Run samples until ctx is done, then closes every watcher's channel and
// refuses new watchers.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stopped = true
		for w := range s.watchers {
			close(w.c)
			delete(s.watchers, w)
		}
	}()
	for {
		var fire <-chan time.Time
		if k, ok := s.nextDue(); ok {
			t.Reset(time.Until(s.at(k)))
			fire = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			t.Stop()
		case <-fire:
			s.tick(s.index(time.Now()))
		}
	}
}

// index is the last tick at or before now.
func (s *Sampler) index(now time.Time) int64 { return int64(now.Sub(s.epoch) / s.opts.Tick) }

// at is the time of tick k.
func (s *Sampler) at(k int64) time.Time { return s.epoch.Add(time.Duration(k) * s.opts.Tick) }

// nextDue is the earliest tick anyone is due at.
func (s *Sampler) nextDue() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := int64(0), false
	if s.hist != nil {
		k, ok = s.histNext, true
	}
	for w := range s.watchers {
		if !ok || w.next < k {
			k, ok = w.next, true
		}
	}
	return k, ok
}

// tick reads the counters once for everyone due at tick k (or before: a
// late tick skips what it missed) and hands the snapshot out.
func (s *Sampler) tick(k int64) {
	s.mu.Lock()
	var due []*Watcher
	for w := range s.watchers {
		if w.next <= k {
			due = append(due, w)
			w.next = k + w.every
		}
	}
	record := s.hist != nil && s.histNext <= k
	if record {
		s.histNext = (k/s.perSec + 1) * s.perSec
	}
	s.mu.Unlock()
	if len(due) == 0 && !record {
		return
	}

	// The kernel's drop counts cost a system call per socket: read them
	// once a second (with the history), the other counters every tick.
	var snap manager.Snapshot
	if q, ok := s.src.(quickSource); ok && !record && k-s.lastFull < s.perSec {
		snap = q.QuickSnapshot()
	} else {
		snap = s.src.Snapshot()
		s.lastFull = k
	}
	s.reads.Add(1)
	s.latestP.Store(&snap)
	if record {
		s.hmu.Lock()
		s.hist.add(&snap)
		s.hmu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range due {
		if _, ok := s.watchers[w]; !ok {
			continue // closed meanwhile
		}
		// Keep only the newest: empty the slot if the receiver is behind.
		select {
		case <-w.c:
		default:
		}
		w.c <- &snap
	}
}
