package sampler

import (
	"errors"
	"testing"
	"time"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

// countingSource counts its reads and puts the count in each snapshot's
// DatagramsReceived, so a receiver can tell the readings apart.
type countingSource struct{ reads uint64 }

func (c *countingSource) Snapshot() manager.Snapshot {
	c.reads++
	return manager.Snapshot{Time: time.Now(), Total: listener.Stats{DatagramsReceived: c.reads}}
}

// recv returns the snapshot waiting for w, or nil.
func recv(w *Watcher) *manager.Snapshot {
	select {
	case s := <-w.c:
		return s
	default:
		return nil
	}
}

// newTestSampler returns a sampler whose clock stands one tick before
// tick 0, so that every watcher is first due at tick 0; tests drive tick
// by hand.
func newTestSampler(src Source, opts Options) *Sampler {
	s := New(src, opts)
	s.now = func() time.Time { return s.epoch.Add(-s.opts.Tick) }
	return s
}

// TestTickReadsOnceForAllWatchers drives ticks by hand: 64 watchers with
// four different intervals cost one reading per tick in which anyone is
// due, none in the others, and each watcher gets the shared snapshot on
// its own schedule.
func TestTickReadsOnceForAllWatchers(t *testing.T) {
	src := &countingSource{}
	s := newTestSampler(src, Options{})
	intervals := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second}
	var ws []*Watcher
	for i := range DefaultMaxWatchers {
		w, err := s.Watch(intervals[i%len(intervals)])
		if err != nil {
			t.Fatalf("watcher %d: %v", i, err)
		}
		if w.next != 0 {
			t.Fatalf("watcher %d first due at tick %d, want 0 (the next tick)", i, w.next)
		}
		ws = append(ws, w)
	}
	got := make([]int, len(ws)) // snapshots received per watcher
	for k := range int64(20) {
		before := src.reads
		s.tick(k)
		if src.reads != before+1 {
			t.Fatalf("tick %d: %d readings with %d watchers, want 1", k, src.reads-before, len(ws))
		}
		var shared *manager.Snapshot
		for i, w := range ws {
			snap := recv(w)
			every := int64(intervals[i%len(intervals)] / DefaultTick)
			if due := k%every == 0; due != (snap != nil) {
				t.Fatalf("tick %d, watcher %d (every %d ticks): got snapshot %v, want one %v", k, i, every, snap != nil, due)
			}
			if snap == nil {
				continue
			}
			got[i]++
			if shared == nil {
				shared = snap
			}
			if snap != shared || snap.Total.DatagramsReceived != src.reads {
				t.Fatalf("tick %d, watcher %d: got reading %d (%p), want the shared reading %d (%p)",
					k, i, snap.Total.DatagramsReceived, snap, src.reads, shared)
			}
		}
	}
	for i, n := range got {
		if want := 20 / int(intervals[i%len(intervals)]/DefaultTick); n != want {
			t.Errorf("watcher %d: got %d snapshots in 20 ticks, want %d", i, n, want)
		}
	}

	// With only the 1 s watchers left, the ticks between read nothing.
	for i, w := range ws {
		if intervals[i%len(intervals)] != time.Second {
			w.Close()
		}
	}
	before := src.reads
	for k := int64(20); k < 40; k++ {
		s.tick(k)
	}
	if got := src.reads - before; got != 2 {
		t.Errorf("20 ticks with only 1 s watchers: got %d readings, want 2", got)
	}
}

// TestTickLateSkips checks that a late tick serves everyone due before it
// once, and that they are next due an interval after it.
func TestTickLateSkips(t *testing.T) {
	src := &countingSource{}
	s := newTestSampler(src, Options{})
	fast, _ := s.Watch(100 * time.Millisecond)
	slow, _ := s.Watch(300 * time.Millisecond)
	s.tick(0)
	recv(fast)
	recv(slow)
	s.tick(7) // the loop was late: ticks 1-6 missed
	if src.reads != 2 || recv(fast) == nil || recv(slow) == nil {
		t.Fatalf("late tick: got %d readings, want 2 with both watchers served", src.reads)
	}
	if fast.next != 8 || slow.next != 10 {
		t.Errorf("next due: got %d and %d, want 8 and 10", fast.next, slow.next)
	}
}

// TestSlowReceiverGetsNewest checks that a watcher that does not keep up
// holds only the newest snapshot and never blocks a tick.
func TestSlowReceiverGetsNewest(t *testing.T) {
	src := &countingSource{}
	s := newTestSampler(src, Options{})
	w, _ := s.Watch(DefaultTick)
	for k := range int64(5) {
		s.tick(k)
	}
	if snap := recv(w); snap == nil || snap.Total.DatagramsReceived != 5 {
		t.Fatalf("after 5 ticks unread: got %+v, want reading 5", snap)
	}
	if snap := recv(w); snap != nil {
		t.Errorf("second receive: got reading %d, want nothing", snap.Total.DatagramsReceived)
	}
}

func TestWatchLimit(t *testing.T) {
	s := newTestSampler(&countingSource{}, Options{MaxWatchers: 3})
	var ws []*Watcher
	for range 3 {
		w, err := s.Watch(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if _, err := s.Watch(time.Second); !errors.Is(err, ErrTooManyWatchers) {
		t.Fatalf("4th watcher with MaxWatchers 3: got %v, want %v", err, ErrTooManyWatchers)
	}
	ws[1].Close()
	if _, err := s.Watch(time.Second); err != nil {
		t.Errorf("watcher after one closed: got %v, want it accepted", err)
	}
	if n := s.Watchers(); n != 3 {
		t.Errorf("Watchers: got %d, want 3", n)
	}
	if d := New(&countingSource{}, Options{}); d.opts.MaxWatchers != 64 {
		t.Errorf("default MaxWatchers: got %d, want 64", d.opts.MaxWatchers)
	}
}

// TestHistoryTick checks that the history is sampled on whole seconds of
// the grid, from the same readings as the watchers, and that with no
// watcher the other ticks read nothing.
func TestHistoryTick(t *testing.T) {
	src := &countingSource{}
	s := newTestSampler(src, Options{History: time.Minute})
	for k := range int64(25) {
		s.tick(k)
	}
	if src.reads != 3 {
		t.Fatalf("25 ticks, history only: got %d readings, want 3 (ticks 0, 10, 20)", src.reads)
	}
	w, _ := s.Watch(200 * time.Millisecond)
	w.next = 26
	for k := int64(26); k < 31; k++ {
		s.tick(k)
	}
	// Watcher at 26, 28 and 30; the history at 30 shares the last.
	if src.reads != 6 {
		t.Errorf("ticks 26-30 with a 200 ms watcher: got %d readings, want 6", src.reads)
	}
	if h := s.History(0); len(h.Times) != 4 {
		t.Errorf("history samples: got %d, want 4", len(h.Times))
	}
}

// quickSource also reads without system calls; it counts both kinds.
type quickCounting struct {
	countingSource
	quick uint64
}

func (q *quickCounting) QuickSnapshot() manager.Snapshot {
	q.quick++
	return q.countingSource.Snapshot()
}

// TestKernelDropsOncePerSecond checks that with a 100 ms watcher the
// sampler reads the kernel's drop counts (a full Snapshot) once per second
// and quick snapshots between, and always full with the history.
func TestKernelDropsOncePerSecond(t *testing.T) {
	src := &quickCounting{}
	s := newTestSampler(src, Options{})
	s.Watch(100 * time.Millisecond)
	for k := range int64(25) {
		s.tick(k)
	}
	if full := src.reads - src.quick; full != 3 || src.quick != 22 {
		t.Errorf("25 ticks at 100 ms: got %d full and %d quick readings, want 3 (ticks 0, 10, 20) and 22", full, src.quick)
	}

	src = &quickCounting{}
	s = newTestSampler(src, Options{History: time.Minute})
	s.Watch(100 * time.Millisecond)
	for k := range int64(5) {
		s.tick(k)
	}
	s.lastFull = -100 // as if the last full reading were long ago
	s.tick(5)
	if full := src.reads - src.quick; full != 2 || src.quick != 4 {
		t.Errorf("got %d full and %d quick readings, want 2 (history at tick 0, stale at 5) and 4", full, src.quick)
	}
}
