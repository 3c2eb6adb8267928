// Package metrics exposes udpd's counters to Prometheus. Its Collector
// reads the manager's snapshots when Prometheus scrapes, so metrics cost
// nothing on the datagram path: they are the same per-worker counters
// GetStats reads. metrics never imports the admin API or gRPC.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/udpd/udpd/service/manager"
)

// Source is what the Collector reads: a *manager.Manager.
type Source interface {
	List(after string, limit int) ([]manager.Listener, bool)
}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src Source

	received, sent, bytesIn, bytesOut, readErrors, dropped *prometheus.Desc
	info, state, generation, listeners                     *prometheus.Desc

	mu    sync.Mutex         // one scrape at a time uses and renews cache
	cache map[string]*labels // by listener id, from the last scrape
}

var _ prometheus.Collector = (*Collector)(nil)

// Drop reasons, the values of the "reason" label of
// udpd_datagrams_dropped_total.
const (
	ReasonTooLarge    = "too_large"    // reply over the largest payload or the reply ratio
	ReasonSendError   = "send_error"   // the kernel refused the reply
	ReasonLoopBlocked = "loop_blocked" // source is a responder's port or this daemon's own address, or caught in an echo loop
	ReasonRateLimited = "rate_limited" // source network over its limit
	ReasonKernel      = "kernel"       // receive queue full: never reached udpd
)

// families are the Collector's metric families, in the order of their
// names.
var families = [...]struct {
	name, help string
	counter    bool
	labels     []string
}{
	{"udpd_bytes_received_total", "Payload bytes read by the listener.", true, []string{"listener"}},
	{"udpd_bytes_sent_total", "Payload bytes sent by the listener.", true, []string{"listener"}},
	{"udpd_datagrams_dropped_total", "Datagrams not answered, by reason: too_large, send_error, loop_blocked, rate_limited, and kernel (dropped by the kernel before udpd read them).",
		true, []string{"listener", "reason"}},
	{"udpd_datagrams_received_total", "Datagrams read by the listener.", true, []string{"listener"}},
	{"udpd_datagrams_sent_total", "Replies sent by the listener.", true, []string{"listener"}},
	{"udpd_listener_generation", "Binds of the listener: 1 after start, +1 per rebind.", false, []string{"listener"}},
	{"udpd_listener_info", "Always 1: the listener's requested and bound addresses.", false, []string{"listener", "address", "bound_address"}},
	{"udpd_listener_state", "1 for the listener's current state, 0 for the other: running, or draining (stopped, still answering what its sockets hold).",
		false, []string{"listener", "state"}},
	{"udpd_listeners", "Listeners running (draining ones not counted).", false, nil},
	{"udpd_read_errors_total", "Failed socket reads (not datagrams).", true, []string{"listener"}},
}

// New returns a Collector over src.
func New(src Source) *Collector {
	var d [len(families)]*prometheus.Desc
	for i, f := range families {
		d[i] = prometheus.NewDesc(f.name, f.help, f.labels, nil)
	}
	return &Collector{
		src: src, bytesIn: d[0], bytesOut: d[1], dropped: d[2], received: d[3], sent: d[4],
		generation: d[5], info: d[6], state: d[7], listeners: d[8], readErrors: d[9],
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.sent, c.bytesIn, c.bytesOut, c.readErrors, c.dropped, c.info, c.state, c.generation, c.listeners} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It writes each family's series
// in the order of their label values, and reuses each listener's label
// pairs from the last scrape: at 10,000 listeners (130,000 series) making
// and sorting the labels anew, then sorting the families, was most of a
// scrape's CPU time.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ls, _ := c.src.List("", 0)
	running := 0
	for _, l := range ls {
		if l.State == manager.StateRunning {
			running++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.listeners, prometheus.GaugeValue, float64(running))
	c.mu.Lock()
	defer c.mu.Unlock()
	cache := make(map[string]*labels, len(ls))
	for _, l := range ls {
		lb := c.labelsOf(l, cache)
		s := l.Stats
		ch <- sample{c.received, lb.id, float64(s.DatagramsReceived), true}
		ch <- sample{c.sent, lb.id, float64(s.DatagramsSent), true}
		ch <- sample{c.bytesIn, lb.id, float64(s.BytesReceived), true}
		ch <- sample{c.bytesOut, lb.id, float64(s.BytesSent), true}
		ch <- sample{c.readErrors, lb.id, float64(s.ReadErrors), true}
		// In the order of reasons (dropReasons).
		for i, v := range [...]uint64{s.KernelDrops, s.LoopBlocked, s.RateLimited, s.SendErrors, s.RepliesTooLarge} {
			ch <- sample{c.dropped, lb.reasons[i], float64(v), true}
		}
		ch <- sample{c.info, lb.info, 1, false}
		for i, st := range states {
			v := 0.0
			if l.State == st {
				v = 1
			}
			ch <- sample{c.state, lb.states[i], v, false}
		}
		ch <- sample{c.generation, lb.id, float64(l.Generation), false}
	}
	c.cache = cache
}

// dropReasons and states are label values in sorted order.
var (
	dropReasons = [...]string{ReasonKernel, ReasonLoopBlocked, ReasonRateLimited, ReasonSendError, ReasonTooLarge}
	states      = [...]manager.State{manager.StateDraining, manager.StateRunning}
)

// labelsOf returns l's labels, from the last scrape's cache if they have
// not changed, and puts them in cache (the next scrape's). c.mu is held.
func (c *Collector) labelsOf(l manager.Listener, cache map[string]*labels) *labels {
	bound := ""
	if l.BoundAddress.IsValid() {
		bound = l.BoundAddress.String()
	}
	lb := c.cache[l.ID]
	if lb == nil || lb.address != l.Address || lb.bound != bound {
		lb = newLabels(l.ID, l.Address, bound)
	}
	cache[l.ID] = lb
	return lb
}

// labels are one listener's label pairs, in the order of their names as
// the registry wants them. Samples only read them, so every scrape can
// share them.
type labels struct {
	address, bound string
	id             []*dto.LabelPair                   // listener
	reasons        [len(dropReasons)][]*dto.LabelPair // listener, reason
	states         [len(states)][]*dto.LabelPair      // listener, state
	info           []*dto.LabelPair                   // address, bound_address, listener

	// The same in the text format, escaped: text is `listener="…"`,
	// infoText `{address="…",bound_address="…",listener="…"}`.
	text, infoText string
}

func newLabels(id, address, bound string) *labels {
	pair := func(name, value string) *dto.LabelPair { return &dto.LabelPair{Name: &name, Value: &value} }
	lid := pair("listener", id)
	lb := &labels{
		address: address,
		bound:   bound,
		id:      []*dto.LabelPair{lid},
		info:    []*dto.LabelPair{pair("address", address), pair("bound_address", bound), lid},
		text:    `listener="` + escapeLabel.Replace(id) + `"`,
	}
	lb.infoText = `{address="` + escapeLabel.Replace(address) + `",bound_address="` + escapeLabel.Replace(bound) + `",` + lb.text + `}`
	for i, r := range dropReasons {
		lb.reasons[i] = []*dto.LabelPair{lid, pair("reason", r)}
	}
	for i, st := range states {
		lb.states[i] = []*dto.LabelPair{lid, pair("state", st.String())}
	}
	return lb
}

// sample is one series' value: a prometheus.Metric with ready labels.
type sample struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	value   float64
	counter bool
}

func (s sample) Desc() *prometheus.Desc { return s.desc }

func (s sample) Write(m *dto.Metric) error {
	m.Label = s.labels
	v := s.value
	if s.counter {
		m.Counter = &dto.Counter{Value: &v}
	} else {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	return nil
}
