package manager_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udpd/udpd/service/manager"
)

// stuckStore is a Store whose Save, once blocked, reports that it was
// entered and then waits until it is released: a disk that hangs.
type stuckStore struct {
	entered chan []manager.Spec
	release chan struct{}
	block   chan bool // holds whether Save blocks
}

func newStuckStore() *stuckStore {
	s := &stuckStore{entered: make(chan []manager.Spec), release: make(chan struct{}), block: make(chan bool, 1)}
	s.block <- false
	return s
}

func (s *stuckStore) Save(specs []manager.Spec) error {
	block := <-s.block
	s.block <- block
	if block {
		s.entered <- specs
		<-s.release
	}
	return nil
}

func (s *stuckStore) setBlock(b bool) { <-s.block; s.block <- b }

// TestReadsDoNotWaitForAStuckSave holds each kind of change inside a Save
// that does not return, and checks that Get, List, Stats and Specs answer
// (and Snapshot) meanwhile, showing the state from before the change.
func TestReadsDoNotWaitForAStuckSave(t *testing.T) {
	store := newStuckStore()
	m := newManager(t, manager.Options{Store: store})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	mustEcho(t, a.BoundAddress, "hello")
	waitFor(t, "a's counters", func() bool {
		_, per, _ := m.Stats("a")
		return per[0].Stats.DatagramsSent == 1
	})

	changes := []struct {
		name string
		do   func() error
	}{
		{"start", func() error {
			_, err := m.Start(ctx(t), manager.Spec{ID: "b", Address: "127.0.0.1:0"}, "")
			return err
		}},
		{"rebind", func() error {
			_, err := m.Rebind(ctx(t), "a", freeAddr(t, "127.0.0.1"), 0)
			return err
		}},
		{"stop", func() error {
			_, err := m.Stop(ctx(t), "b", 0)
			return err
		}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			before := m.Specs()
			store.setBlock(true)
			changed := make(chan error, 1)
			go func() { changed <- c.do() }()
			unstick := func() {
				store.setBlock(false)
				store.release <- struct{}{}
			}
			var saving []manager.Spec
			select {
			case saving = <-store.entered:
			case err := <-changed:
				t.Fatalf("%s returned %v without saving", c.name, err)
			}

			type reads struct {
				get    manager.Listener
				getErr error
				list   []manager.Listener
				total  uint64
				per    []manager.ListenerStats
				specs  []manager.Spec
				snap   manager.Snapshot
			}
			done := make(chan reads, 1)
			go func() {
				var r reads
				r.get, r.getErr = m.Get("a")
				r.list, _ = m.List("", 0)
				total, per, _ := m.Stats("")
				r.total, r.per = total.DatagramsSent, per
				r.specs = m.Specs()
				r.snap = m.Snapshot()
				done <- r
			}()
			var r reads
			select {
			case r = <-done:
			case <-ctx(t).Done():
				unstick() // so that the test can end and shut down
				t.Fatalf("Get, List, Stats, Specs and Snapshot still waiting while a %s is saving", c.name)
			}
			// The change is still inside Save: nothing released it.
			select {
			case err := <-changed:
				t.Fatalf("%s returned %v before its Save did", c.name, err)
			default:
			}
			if r.getErr != nil || r.get.Stats.DatagramsSent != 1 {
				t.Errorf("Get(a) during save: got %+v, %v, want a with 1 datagram sent", r.get, r.getErr)
			}
			wantIDs := make([]string, len(before))
			for i, s := range before {
				wantIDs[i] = s.ID
			}
			if got := ids(r.list); !cmp.Equal(got, wantIDs) {
				t.Errorf("List during save: got %v, want %v (the change is not acknowledged yet)", got, wantIDs)
			}
			if r.total != 1 || len(r.per) != len(before) {
				t.Errorf("Stats during save: got total sent %d and %d listeners, want 1 and %d", r.total, len(r.per), len(before))
			}
			if got := statsIDs(r.snap.Listeners); r.snap.Total.DatagramsSent != 1 || !cmp.Equal(got, wantIDs) {
				t.Errorf("Snapshot during save: got total sent %d and %v, want 1 and %v", r.snap.Total.DatagramsSent, got, wantIDs)
			}
			if diff := cmp.Diff(before, r.specs); diff != "" {
				t.Errorf("Specs during save (-want +got):\n%s", diff)
			}

			unstick()
			if err := <-changed; err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if diff := cmp.Diff(saving, m.Specs()); diff != "" {
				t.Errorf("Specs after %s, against what was saved (-saved +got):\n%s", c.name, diff)
			}
		})
	}
}
