package manager

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestDrainingIsListed stops a listener in Stop's two steps (forget, then
// drainGroup) and checks what List, Get and Stats say in between: the
// listener is listed as draining, with its address and counters, until
// its sockets close, and not once a new listener takes its id.
func TestDrainingIsListed(t *testing.T) {
	m := New(Options{Workers: 1})
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	ctx := t.Context()
	a, err := m.Start(ctx, Spec{ID: "a", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	e, cur, err := m.forget(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}

	ls, _ := m.List("", 0)
	if len(ls) != 1 || ls[0].ID != "a" || ls[0].State != StateDraining || ls[0].BoundAddress != a.BoundAddress || ls[0].Workers != 1 {
		t.Fatalf("List while draining: %+v, want a draining on %v", ls, a.BoundAddress)
	}
	if got, err := m.Get("a"); err != nil || got.State != StateDraining {
		t.Errorf("Get while draining: %+v, %v, want draining", got, err)
	}
	if _, _, err := m.Stats("a"); err == nil {
		t.Errorf("Stats(a) while draining: found, want not found (Stats covers running listeners; totals include it)")
	}
	if specs := m.Specs(); len(specs) != 0 {
		t.Errorf("Specs while draining: %+v, want none (the configuration no longer has it)", specs)
	}

	// A new listener takes the id: only it is listed.
	b, err := m.Start(ctx, Spec{ID: "a", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	ls, _ = m.List("", 0)
	if len(ls) != 1 || ls[0].State != StateRunning || ls[0].BoundAddress != b.BoundAddress {
		t.Errorf("List with the id taken: %+v, want the new a running on %v", ls, b.BoundAddress)
	}
	if _, err := m.Stop(ctx, "a", time.Second); err != nil {
		t.Fatal(err)
	}

	m.drainGroup(ctx, e, cur, time.Second)
	if ls, _ := m.List("", 0); len(ls) != 0 {
		t.Errorf("List after the drain: %+v, want none", ls)
	}
	if _, err := m.Get("a"); err == nil {
		t.Error("Get after the drain: found, want not found")
	}
	var zero netip.AddrPort
	if got := m.read(e); got.State != StateStopped || got.BoundAddress != zero {
		t.Errorf("the drained listener reads as %v at %v, want stopped", got.State, got.BoundAddress)
	}
}
