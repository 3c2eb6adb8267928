package metrics_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
)

func TestCollectorAfterKnownTraffic(t *testing.T) {
	m := manager.New(manager.Options{Workers: 1})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	l, err := m.Start(context.Background(), manager.Spec{ID: "m1", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.BoundAddress))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for _, msg := range []string{"one", "two", "three"} {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("reply to %q: %v", msg, err)
		}
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.New(m))
	want := map[string]float64{
		`udpd_datagrams_received_total{listener="m1"}`:                      3,
		`udpd_datagrams_sent_total{listener="m1"}`:                          3,
		`udpd_bytes_received_total{listener="m1"}`:                          11,
		`udpd_bytes_sent_total{listener="m1"}`:                              11,
		`udpd_read_errors_total{listener="m1"}`:                             0,
		`udpd_datagrams_dropped_total{listener="m1",reason="too_large"}`:    0,
		`udpd_datagrams_dropped_total{listener="m1",reason="send_error"}`:   0,
		`udpd_datagrams_dropped_total{listener="m1",reason="loop_blocked"}`: 0,
		`udpd_datagrams_dropped_total{listener="m1",reason="rate_limited"}`: 0,
		`udpd_datagrams_dropped_total{listener="m1",reason="kernel"}`:       0,
		`udpd_listener_state{listener="m1",state="running"}`:                1,
		`udpd_listener_state{listener="m1",state="stopped"}`:                0,
		`udpd_listener_generation{listener="m1"}`:                           1,
		`udpd_listeners`: 1,
		`udpd_listener_info{address="127.0.0.1:0",bound_address="` + l.BoundAddress.String() + `",listener="m1"}`: 1,
	}
	var got map[string]float64
	// A worker adds a batch's counts just after sending its replies.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = gather(t, reg)
		if got[`udpd_datagrams_sent_total{listener="m1"}`] == 3 {
			break
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
}

// gather returns every series as "name{labels}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[series(mf.GetName(), m)] = value(m)
		}
	}
	return out
}

func series(name string, m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return name
	}
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return -1
}
