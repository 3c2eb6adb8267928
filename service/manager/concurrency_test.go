package manager_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/udpd/udpd/service/manager"
)

// TestConcurrentChanges races Start, Stop, Rebind, Apply, Get, List and Stats on
// a few ids and addresses, then checks that the manager, its last save and
// the sockets agree.
func TestConcurrentChanges(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	idsUsed := []string{"a", "b", "c"}
	addrs := []string{
		"127.0.0.1:0",
		freeAddr(t, "127.0.0.1"),
		freeAddr(t, "127.0.0.1"),
		freeAddr(t, "127.0.0.1"),
	}
	// Errors a lost race may give; anything else is a bug.
	expected := []error{manager.ErrNotFound, manager.ErrAlreadyExists, manager.ErrAddressInUse}
	check := func(op string, err error) {
		if err == nil {
			return
		}
		for _, e := range expected {
			if errors.Is(err, e) {
				return
			}
		}
		t.Errorf("%s: unexpected error %v", op, err)
	}

	const goroutines, iterations = 8, 40
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range iterations {
				id := idsUsed[r.IntN(len(idsUsed))]
				if g%2 == 0 {
					id = "a" // half the goroutines fight over one id
				}
				addr := addrs[r.IntN(len(addrs))]
				switch r.IntN(8) { // starts are likelier, so some listeners remain
				case 0, 1, 2:
					_, err := m.Start(ctx(t), manager.Spec{ID: id, Address: addr}, "")
					check("Start", err)
				case 3:
					_, err := m.Stop(ctx(t), id, 50*time.Millisecond)
					check("Stop", err)
				case 4:
					_, err := m.Rebind(ctx(t), id, addr, 50*time.Millisecond)
					check("Rebind", err)
				case 5:
					l, err := m.Get(id)
					check("Get", err)
					// A stop in progress shows as draining until its sockets close.
					if err == nil && (l.ID != id || (l.State != manager.StateRunning && l.State != manager.StateDraining) || !l.BoundAddress.IsValid()) {
						t.Errorf("Get(%q): got %+v, want it running or draining, with a bound address", id, l)
					}
				case 7:
					// A one-listener configuration, without prune: a start
					// or a move of id, in one step.
					_, err := m.Apply(ctx(t), []manager.Spec{{ID: id, Address: addr}}, manager.ApplyOptions{Drain: 50 * time.Millisecond})
					check("Apply", err)
				case 6:
					ls, _ := m.List("", 0)
					total, per, err := m.Stats("")
					check("Stats", err)
					if len(ls) > len(idsUsed) || len(per) > len(idsUsed) {
						t.Errorf("List: got %d listeners, Stats %d, want at most %d", len(ls), len(per), len(idsUsed))
					}
					if total.DatagramsReceived != 0 {
						t.Errorf("total received: got %d, want 0 (no traffic)", total.DatagramsReceived)
					}
				}
			}
		}()
	}
	wg.Wait()

	ls, more := m.List("", 0)
	_, saved := store.state()
	var listed []manager.Spec
	for _, l := range ls {
		listed = append(listed, manager.Spec{ID: l.ID, Address: l.Address}) // every Start asked for 0 workers
	}
	if diff := cmp.Diff(saved, listed, cmpopts.EquateEmpty()); diff != "" || more {
		t.Errorf("List vs last save (-saved +listed), more=%v:\n%s", more, diff)
	}
	if diff := cmp.Diff(saved, m.Specs(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Specs vs last save (-saved +Specs):\n%s", diff)
	}
	seen := map[string]string{}
	for _, l := range ls {
		if l.State != manager.StateRunning {
			t.Errorf("listener %s: got state %v, want running", l.ID, l.State)
		}
		if other, dup := seen[l.BoundAddress.String()]; dup {
			t.Errorf("listeners %s and %s both report %v", other, l.ID, l.BoundAddress)
		}
		seen[l.BoundAddress.String()] = l.ID
		mustEcho(t, l.BoundAddress, "listener "+l.ID)
	}
	t.Logf("%d listeners at the end, %d saves", len(ls), func() int { n, _ := store.state(); return n }())
}

// TestShutdownRacesChanges shuts the manager down while other goroutines
// start and stop listeners: each call either works or fails with ErrClosed
// (stopping an id that is gone may also be ErrNotFound), and afterwards
// nothing is left bound.
func TestShutdownRacesChanges(t *testing.T) {
	m := manager.New(manager.Options{Workers: 1})
	const goroutines = 4
	var wg sync.WaitGroup
	running := make(chan struct{}, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('a' + g))
			for i := range 200 {
				if i == 1 {
					running <- struct{}{}
				}
				_, err := m.Start(ctx(t), manager.Spec{ID: id, Address: "127.0.0.1:0"}, "")
				if err != nil && !errors.Is(err, manager.ErrClosed) {
					t.Errorf("Start(%s): %v", id, err)
				}
				for range 2 { // the second Stop finds nothing
					_, err = m.Stop(ctx(t), id, 10*time.Millisecond)
					if err != nil && !errors.Is(err, manager.ErrClosed) && !errors.Is(err, manager.ErrNotFound) {
						t.Errorf("Stop(%s): %v", id, err)
					}
				}
				if errors.Is(err, manager.ErrClosed) {
					return
				}
			}
		}()
	}
	for range goroutines {
		<-running // every goroutine is past its first round
	}
	if err := m.Shutdown(ctx(t)); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	wg.Wait()
	ls, _ := m.List("", 0)
	for _, l := range ls {
		mustBindable(t, l.BoundAddress)
	}
	if _, err := m.Start(ctx(t), manager.Spec{Address: "127.0.0.1:0"}, ""); !errors.Is(err, manager.ErrClosed) {
		t.Errorf("Start after Shutdown: got %v, want %v", err, manager.ErrClosed)
	}
}
