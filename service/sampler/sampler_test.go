package sampler_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

type countingSource struct{ reads atomic.Uint64 }

func (c *countingSource) Snapshot() manager.Snapshot {
	n := c.reads.Add(1)
	return manager.Snapshot{Time: time.Now(), Total: listener.Stats{DatagramsReceived: n}}
}

// TestRunSharesReadings runs a sampler in real time with 64 watchers at
// 100 ms until each has 5 snapshots: the counters are read at most once
// per tick that passed, not once per watcher, and every reading handed
// out was read once.
func TestRunSharesReadings(t *testing.T) {
	src := &countingSource{}
	s := sampler.New(src, sampler.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	begin := time.Now()
	go func() { s.Run(ctx); close(ran) }()

	var (
		mu   sync.Mutex
		seen = map[*manager.Snapshot]bool{}
		wg   sync.WaitGroup
	)
	for i := range sampler.DefaultMaxWatchers {
		w, err := s.Watch(100 * time.Millisecond)
		if err != nil {
			t.Fatalf("watcher %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			for range 5 {
				select {
				case snap := <-w.C():
					mu.Lock()
					seen[snap] = true
					mu.Unlock()
				case <-time.After(10 * time.Second):
					t.Errorf("watcher %d: no snapshot in 10 s", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	reads := src.reads.Load()
	elapsed := time.Since(begin)
	if ticks := uint64(elapsed/sampler.DefaultTick) + 1; reads > ticks {
		t.Errorf("64 watchers × 5 snapshots: got %d readings in %v, want at most one per tick (%d)", reads, elapsed, ticks)
	}
	if uint64(len(seen)) != reads {
		t.Errorf("distinct snapshots handed out: got %d, want %d (one per reading)", len(seen), reads)
	}
	if _, err := s.Watch(time.Second); err != nil {
		t.Errorf("Watch after all closed: %v", err)
	}

	cancel()
	<-ran
}

// TestRunStopClosesWatchers checks that the end of Run closes every
// watcher's channel and refuses new watchers.
func TestRunStopClosesWatchers(t *testing.T) {
	s := sampler.New(&countingSource{}, sampler.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { s.Run(ctx); close(ran) }()
	w, err := s.Watch(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.C(); !ok {
		t.Fatal("first snapshot: channel closed")
	}
	cancel()
	<-ran
	if _, ok := <-w.C(); ok {
		t.Errorf("after Run returned: got a snapshot, want the channel closed")
	}
	if _, err := s.Watch(time.Second); !errors.Is(err, sampler.ErrStopped) {
		t.Errorf("Watch after Run: got %v, want %v", err, sampler.ErrStopped)
	}
}

// TestRunHistoryFromManager samples a real manager's listener with
// traffic into the history, once per second.
func TestRunHistoryFromManager(t *testing.T) {
	m := manager.New(manager.Options{Workers: 1})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(c)
	})
	l, err := m.Start(t.Context(), manager.Spec{ID: "h", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := sampler.New(m, sampler.Options{History: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go s.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		udptest.MustEcho(t, l.BoundAddress, "abc")
		h := s.History(0)
		sum := 0.0
		if len(h.Listeners) == 1 {
			for _, v := range h.Listeners[0].Received {
				sum += v
			}
		}
		if sum > 0 {
			if h.Listeners[0].ID != "h" {
				t.Errorf("listener series: got %q, want h", h.Listeners[0].ID)
			}
			if latest := s.Latest(); latest == nil || len(latest.Listeners) != 1 {
				t.Errorf("Latest: got %+v, want listener h", latest)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no traffic in the history after 10 s: %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
