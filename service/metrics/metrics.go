// Package metrics exposes udpd's counters to Prometheus. Its Collector
// reads the manager's snapshots when Prometheus scrapes, so metrics cost
// nothing on the datagram path: they are the same per-worker counters
// GetStats reads. metrics never imports the admin API or gRPC.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

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
}

var _ prometheus.Collector = (*Collector)(nil)

// Drop reasons, the values of the "reason" label of
// udpd_datagrams_dropped_total.
const (
	ReasonTooLarge    = "too_large"    // reply over the largest payload or the reply ratio
	ReasonSendError   = "send_error"   // the kernel refused the reply
	ReasonLoopBlocked = "loop_blocked" // source port is a responder's
	ReasonRateLimited = "rate_limited" // source network over its limit
	ReasonKernel      = "kernel"       // receive queue full: never reached udpd
)

// New returns a Collector over src.
func New(src Source) *Collector {
	l := []string{"listener"}
	return &Collector{
		src:        src,
		received:   prometheus.NewDesc("udpd_datagrams_received_total", "Datagrams read by the listener.", l, nil),
		sent:       prometheus.NewDesc("udpd_datagrams_sent_total", "Replies sent by the listener.", l, nil),
		bytesIn:    prometheus.NewDesc("udpd_bytes_received_total", "Payload bytes read by the listener.", l, nil),
		bytesOut:   prometheus.NewDesc("udpd_bytes_sent_total", "Payload bytes sent by the listener.", l, nil),
		readErrors: prometheus.NewDesc("udpd_read_errors_total", "Failed socket reads (not datagrams).", l, nil),
		dropped: prometheus.NewDesc("udpd_datagrams_dropped_total",
			"Datagrams not answered, by reason: too_large, send_error, loop_blocked, rate_limited, and kernel (dropped by the kernel before udpd read them).",
			[]string{"listener", "reason"}, nil),
		info: prometheus.NewDesc("udpd_listener_info", "Always 1: the listener's requested and bound addresses.",
			[]string{"listener", "address", "bound_address"}, nil),
		state: prometheus.NewDesc("udpd_listener_state", "1 for the listener's current state, 0 for the others (a state set).",
			[]string{"listener", "state"}, nil),
		generation: prometheus.NewDesc("udpd_listener_generation", "Binds of the listener: 1 after start, +1 per rebind.", l, nil),
		listeners:  prometheus.NewDesc("udpd_listeners", "Listeners running.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.sent, c.bytesIn, c.bytesOut, c.readErrors, c.dropped, c.info, c.state, c.generation, c.listeners} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ls, _ := c.src.List("", 0)
	ch <- prometheus.MustNewConstMetric(c.listeners, prometheus.GaugeValue, float64(len(ls)))
	for _, l := range ls {
		s, id := l.Stats, l.ID
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{id}, labels...)...)
		}
		counter(c.received, s.DatagramsReceived)
		counter(c.sent, s.DatagramsSent)
		counter(c.bytesIn, s.BytesReceived)
		counter(c.bytesOut, s.BytesSent)
		counter(c.readErrors, s.ReadErrors)
		counter(c.dropped, s.RepliesTooLarge, ReasonTooLarge)
		counter(c.dropped, s.SendErrors, ReasonSendError)
		counter(c.dropped, s.LoopBlocked, ReasonLoopBlocked)
		counter(c.dropped, s.RateLimited, ReasonRateLimited)
		counter(c.dropped, s.KernelDrops, ReasonKernel)
		bound := ""
		if l.BoundAddress.IsValid() {
			bound = l.BoundAddress.String()
		}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, id, l.Address, bound)
		for _, st := range []manager.State{manager.StateRunning, manager.StateStopped} {
			v := 0.0
			if l.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, id, st.String())
		}
		ch <- prometheus.MustNewConstMetric(c.generation, prometheus.GaugeValue, float64(l.Generation), id)
	}
}
