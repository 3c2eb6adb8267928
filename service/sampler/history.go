package sampler

import (
	"slices"
	"strings"
	"time"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

// History is the per-second history, oldest sample first: rates over the
// second before each sample.
type History struct {
	Times     []time.Time
	Total     Series
	Listeners []ListenerSeries // ordered by id; listeners over Options.HistoryListeners are left out
}

// ListenerSeries is one listener's history.
type ListenerSeries struct {
	ID string
	Series
}

// Series are datagrams per second: received, sent, and dropped for any
// reason (the kernel's drops included). Each has one value per time.
type Series struct {
	Received, Sent, Dropped []float64
}

// History returns the last n samples (all of them when n <= 0 or more are
// asked for than are kept). It is empty without Options.History.
func (s *Sampler) History(n int) History {
	if s.hist == nil {
		return History{}
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.hist.read(n)
}

// counts are the three charted counters, cumulative.
type counts [3]uint64

func countsOf(st listener.Stats) counts {
	return counts{st.DatagramsReceived, st.DatagramsSent, st.Dropped() + st.KernelDrops}
}

// delta is what counts grew by in one second; a listener handles far
// fewer than 2³² datagrams a second, and a larger step saturates.
type delta [3]uint32

// history is a ring of one sample per second. A listener's series is
// allocated with its first traffic, so idle listeners cost a map entry.
type history struct {
	size, maxSeries int
	head, n         int         // next slot to write; samples held
	times           []time.Time // per slot
	dts             []float64   // seconds since the previous sample, per slot (0: none)
	total           series
	byID            map[string]*series
	seq             uint64 // samples taken: marks the series seen in the last one
}

type series struct {
	last counts
	d    []delta // per slot; nil while the listener has had no traffic
	seen uint64
}

func newHistory(size, maxSeries int) *history {
	h := &history{
		size:      size,
		maxSeries: maxSeries,
		times:     make([]time.Time, size),
		dts:       make([]float64, size),
		byID:      make(map[string]*series),
	}
	h.total.d = make([]delta, size)
	return h
}

func (h *history) add(snap *manager.Snapshot) {
	slot := h.head
	var prev time.Time
	if h.n > 0 {
		prev = h.times[(slot+h.size-1)%h.size]
		h.dts[slot] = snap.Time.Sub(prev).Seconds()
	} else {
		h.dts[slot] = 0
	}
	h.times[slot] = snap.Time
	h.seq++
	h.total.record(slot, h.size, countsOf(snap.Total))
	for _, l := range snap.Listeners {
		cur := countsOf(l.Stats)
		sr := h.byID[l.ID]
		if sr == nil {
			if len(h.byID) >= h.maxSeries {
				continue
			}
			sr = &series{}
			// A listener started since the last sample counts from zero;
			// one there before the history began starts from its counters.
			if prev.IsZero() || !l.Stats.Start.After(prev) {
				sr.last = cur
			}
			h.byID[l.ID] = sr
		}
		sr.seen = h.seq
		sr.record(slot, h.size, cur)
	}
	for id, sr := range h.byID {
		if sr.seen != h.seq {
			delete(h.byID, id) // stopped
		}
	}
	h.head = (slot + 1) % h.size
	h.n = min(h.n+1, h.size)
}

func (sr *series) record(slot, size int, cur counts) {
	var d delta
	nonzero := false
	for i := range cur {
		if cur[i] > sr.last[i] {
			d[i] = uint32(min(cur[i]-sr.last[i], 1<<32-1))
			nonzero = true
		}
	}
	sr.last = cur
	if sr.d == nil {
		if !nonzero {
			return
		}
		sr.d = make([]delta, size)
	}
	sr.d[slot] = d
}

func (h *history) read(n int) History {
	if n <= 0 || n > h.n {
		n = h.n
	}
	first := (h.head - n + h.size) % h.size
	out := History{Times: make([]time.Time, n), Total: h.total.rates(h, first, n)}
	for i := range n {
		out.Times[i] = h.times[(first+i)%h.size]
	}
	out.Listeners = make([]ListenerSeries, 0, len(h.byID))
	for id, sr := range h.byID {
		out.Listeners = append(out.Listeners, ListenerSeries{ID: id, Series: sr.rates(h, first, n)})
	}
	slices.SortFunc(out.Listeners, func(a, b ListenerSeries) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (sr *series) rates(h *history, first, n int) Series {
	s := Series{Received: make([]float64, n), Sent: make([]float64, n), Dropped: make([]float64, n)}
	if sr.d == nil {
		return s
	}
	for i := range n {
		slot := (first + i) % h.size
		dt := h.dts[slot]
		if dt <= 0 {
			continue
		}
		d := sr.d[slot]
		s.Received[i] = float64(d[0]) / dt
		s.Sent[i] = float64(d[1]) / dt
		s.Dropped[i] = float64(d[2]) / dt
	}
	return s
}
