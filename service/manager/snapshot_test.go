package manager_test

import (
	"slices"
	"testing"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

// TestSnapshot checks that one Snapshot reads every listener in id order
// with its own counters (and Describe tells the rest of them), and that its totals keep stopped
// listeners, as Stats does.
func TestSnapshot(t *testing.T) {
	m := newManager(t, manager.Options{})
	c := start(t, m, manager.Spec{ID: "c", Address: "127.0.0.1:0"})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	b := start(t, m, manager.Spec{ID: "b", Address: "127.0.0.1:0", Workers: 2})
	mustEcho(t, a.BoundAddress, "a1")
	for i := range 2 {
		mustEcho(t, b.BoundAddress, "b"+string(rune('0'+i)))
	}
	for i := range 3 {
		mustEcho(t, c.BoundAddress, "cc"+string(rune('0'+i)))
	}
	if _, err := m.Stop(ctx(t), "a", 0); err != nil {
		t.Fatal(err)
	}
	var s manager.Snapshot
	waitFor(t, "b and c counted, a gone", func() bool {
		s = m.Snapshot()
		return len(s.Listeners) == 2 && s.Listeners[0].Stats.DatagramsSent == 2 && s.Listeners[1].Stats.DatagramsSent == 3
	})
	if s.Listeners[0].ID != "b" || s.Listeners[1].ID != "c" {
		t.Errorf("order: got %s, %s, want b, c", s.Listeners[0].ID, s.Listeners[1].ID)
	}
	// Describe tells the rest, in the same order.
	if d := m.Describe(); len(d) != 2 || d[0].ID != "b" || d[1].ID != "c" {
		t.Errorf("Describe: got %+v, want b and c", d)
	} else if got := d[0]; got.Workers != 2 || got.BoundAddress != b.BoundAddress || got.State != manager.StateRunning || got.Stats != (listener.Stats{}) {
		t.Errorf("b: got workers %d, bound %v, state %v, stats %+v; want 2, %v, running, no counters", got.Workers, got.BoundAddress, got.State, got.Stats, b.BoundAddress)
	}
	if got := s.Listeners[1].Stats.BytesReceived; got != 9 {
		t.Errorf("c bytes received: got %d, want 9", got)
	}
	if s.Total.DatagramsReceived != 6 || s.Total.DatagramsSent != 6 || s.Total.BytesReceived != 2+4+9 {
		t.Errorf("total: got %+v, want 6 datagrams, 15 bytes (stopped a included)", s.Total)
	}
	if s.Time.IsZero() || s.Total.Start.After(c.Created) {
		t.Errorf("time %v, total start %v: want set, start before %v", s.Time, s.Total.Start, c.Created)
	}
	if l, ok := s.Listener("c"); !ok || l.ID != "c" {
		t.Errorf(`Listener("c"): got %+v, %v`, l, ok)
	}
	if _, ok := s.Listener("a"); ok {
		t.Errorf(`Listener("a"): found a stopped listener`)
	}
	// With no traffic since, a QuickSnapshot (no system call) reads the
	// same counters.
	q := m.QuickSnapshot()
	if len(q.Listeners) != 2 || q.Total != s.Total || q.Listeners[0].Stats != s.Listeners[0].Stats || q.Listeners[1].Stats != s.Listeners[1].Stats {
		t.Errorf("QuickSnapshot: got total %+v, listeners %+v; want those of Snapshot", q.Total, q.Listeners)
	}
}

// TestOrderedWhateverTheStartOrder starts, stops and restarts listeners
// out of id order: every read (Snapshot, QuickSnapshot, Describe, Stats,
// Specs) and every save lists them in id order.
func TestOrderedWhateverTheStartOrder(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	steps := []struct {
		start, stop string
		want        []string
	}{
		{start: "m", want: []string{"m"}},
		{start: "c", want: []string{"c", "m"}},
		{start: "x", want: []string{"c", "m", "x"}},
		{start: "a", want: []string{"a", "c", "m", "x"}},
		{stop: "m", want: []string{"a", "c", "x"}},
		{stop: "a", want: []string{"c", "x"}},
		{start: "m", want: []string{"c", "m", "x"}},
	}
	for _, s := range steps {
		if s.start != "" {
			start(t, m, manager.Spec{ID: s.start, Address: "127.0.0.1:0"})
		} else if _, err := m.Stop(ctx(t), s.stop, 0); err != nil {
			t.Fatal(err)
		}
		snap, quick := m.Snapshot(), m.QuickSnapshot()
		_, per, err := m.Stats("")
		if err != nil {
			t.Fatal(err)
		}
		_, saved := store.state()
		specIDs := func(specs []manager.Spec) []string {
			out := make([]string, len(specs))
			for i, sp := range specs {
				out[i] = sp.ID
			}
			return out
		}
		for what, got := range map[string][]string{
			"Snapshot":      statsIDs(snap.Listeners),
			"QuickSnapshot": statsIDs(quick.Listeners),
			"Describe":      ids(m.Describe()),
			"Stats":         statsIDs(per),
			"Specs":         specIDs(m.Specs()),
			"the last save": specIDs(saved),
		} {
			if !slices.Equal(got, s.want) {
				t.Errorf("after start %q / stop %q: %s lists %v, want %v", s.start, s.stop, what, got, s.want)
			}
		}
	}
}
