package sampler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

// snap builds a snapshot at second sec from t0 with the given listeners'
// counters; every field that feeds a series differs, so a mixed-up field
// shows.
type lc struct {
	id                       string
	created                  time.Time
	recv, sent, drop, kernel uint64
}

func snapAt(t0 time.Time, sec float64, ls ...lc) *manager.Snapshot {
	s := &manager.Snapshot{Time: t0.Add(time.Duration(sec * float64(time.Second)))}
	for _, l := range ls {
		st := listener.Stats{DatagramsReceived: l.recv, DatagramsSent: l.sent, LoopBlocked: l.drop, KernelDrops: l.kernel, Start: l.created}
		s.Listeners = append(s.Listeners, manager.ListenerStats{ID: l.id, Stats: st})
		s.Total = s.Total.Add(st)
	}
	return s
}

func TestHistoryRates(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := t0.Add(-time.Minute)
	h := newHistory(4, 10)
	// "old" existed before the history began: it starts from its counters.
	h.add(snapAt(t0, 0, lc{"old", before, 100, 90, 5, 5}))
	// "new" started during the second: it counts from zero.
	h.add(snapAt(t0, 1, lc{"old", before, 110, 99, 6, 5}, lc{"new", t0.Add(time.Second / 2), 4, 3, 0, 1}))
	// Two seconds between samples (a late tick): rates over both.
	h.add(snapAt(t0, 3, lc{"old", before, 130, 119, 6, 5}, lc{"new", t0.Add(time.Second / 2), 4, 3, 0, 1}))
	got := h.read(0)
	want := History{
		Times: []time.Time{t0, t0.Add(time.Second), t0.Add(3 * time.Second)},
		Total: Series{Received: []float64{0, 14, 10}, Sent: []float64{0, 12, 10}, Dropped: []float64{0, 2, 0}},
		Listeners: []ListenerSeries{
			{"new", Series{Received: []float64{0, 4, 0}, Sent: []float64{0, 3, 0}, Dropped: []float64{0, 1, 0}}},
			{"old", Series{Received: []float64{0, 10, 10}, Sent: []float64{0, 9, 10}, Dropped: []float64{0, 1, 0}}},
		},
	}
	// The total's first sample is the daemon's whole count over no time: 0.
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if got := h.read(2); len(got.Times) != 2 || got.Listeners[1].Received[1] != 10 || !got.Times[0].Equal(t0.Add(time.Second)) {
		t.Errorf("last 2 samples: got %+v", got)
	}

	// The ring keeps 4: two more samples push out the first two; a
	// stopped listener's series goes.
	h.add(snapAt(t0, 4, lc{"old", before, 131, 120, 6, 5}))
	h.add(snapAt(t0, 5, lc{"old", before, 133, 121, 6, 5}))
	got = h.read(0)
	want = History{
		Times:     []time.Time{t0.Add(time.Second), t0.Add(3 * time.Second), t0.Add(4 * time.Second), t0.Add(5 * time.Second)},
		Total:     got.Total,
		Listeners: []ListenerSeries{{"old", Series{Received: []float64{10, 10, 1, 2}, Sent: []float64{9, 10, 1, 1}, Dropped: []float64{1, 0, 0, 0}}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history after wrapping (-want +got):\n%s", diff)
	}
}

// TestHistoryIdleAndCapped checks that an idle listener has a series of
// zeros and no allocation, and that listeners beyond the cap have none.
func TestHistoryIdleAndCapped(t *testing.T) {
	t0 := time.Now()
	h := newHistory(900, 2)
	for i := range 3 {
		h.add(snapAt(t0, float64(i), lc{"a", t0, 0, 0, 0, 0}, lc{"b", t0, uint64(i), 0, 0, 0}, lc{"c", t0, uint64(i), 0, 0, 0}))
	}
	if h.byID["a"].d != nil {
		t.Errorf("idle listener: series allocated")
	}
	if h.byID["b"].d == nil {
		t.Errorf("busy listener: no series")
	}
	got := h.read(0)
	if len(got.Listeners) != 2 || got.Listeners[0].ID != "a" || got.Listeners[1].ID != "b" {
		t.Fatalf("listeners with a history: got %+v, want a and b (cap 2)", got.Listeners)
	}
	if diff := cmp.Diff([]float64{0, 0, 0}, got.Listeners[0].Received); diff != "" {
		t.Errorf("idle listener's rates (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{0, 2, 2}, got.Total.Received[:3]); diff != "" {
		t.Errorf("total received (c included) (-want +got):\n%s", diff)
	}
}
