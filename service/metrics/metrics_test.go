package metrics_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
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
		`udpd_listener_state{listener="m1",state="draining"}`:               0,
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

// TestCollectorTellsCountersApart sends traffic in which every counter has
// its own value (received 6, sent 2, bytes in 14, bytes out 6, loop
// blocked 2, rate limited 1, too large 1), so that reporting one counter
// under another's name fails.
func TestCollectorTellsCountersApart(t *testing.T) {
	looper, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer looper.Close()
	m := manager.New(manager.Options{
		Workers: 1,
		// Three datagrams a source network, then (practically) none; a
		// reply longer than its request is too large.
		Limits:    manager.Limits{PerSecond: 0.001, Burst: 3, LimitLoopback: true, MaxReplyRatio: 1},
		LoopPorts: []uint16{uint16(looper.LocalAddr().(*net.UDPAddr).Port)},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.Shutdown(ctx)
	})
	l, err := m.Start(context.Background(), manager.Spec{ID: "m2", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	to := net.UDPAddrFromAddrPort(l.BoundAddress)
	c, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for _, tc := range []struct {
		msg     string
		replied bool
	}{
		{"one", true},
		{"ΐ", false}, // 2 bytes whose uppercase is 6: over the ratio
		{"two", true},
		{"four", false}, // the burst of 3 is spent
	} {
		if _, err := c.Write([]byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		if !tc.replied {
			continue
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("reply to %q: %v", tc.msg, err)
		}
	}
	for _, msg := range []string{"a", "b"} {
		if _, err := looper.WriteTo([]byte(msg), to); err != nil {
			t.Fatal(err)
		}
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.New(m))
	const series = `{listener="m2"}`
	want := map[string]float64{
		"udpd_datagrams_received_total" + series:                            6,
		"udpd_datagrams_sent_total" + series:                                2,
		"udpd_bytes_received_total" + series:                                14,
		"udpd_bytes_sent_total" + series:                                    6,
		`udpd_datagrams_dropped_total{listener="m2",reason="too_large"}`:    1,
		`udpd_datagrams_dropped_total{listener="m2",reason="send_error"}`:   0,
		`udpd_datagrams_dropped_total{listener="m2",reason="loop_blocked"}`: 2,
		`udpd_datagrams_dropped_total{listener="m2",reason="rate_limited"}`: 1,
	}
	// The dropped datagrams have no reply to wait for: wait for the
	// counters to account for all six.
	var got map[string]float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got = gather(t, reg)
		if got["udpd_datagrams_received_total"+series] == 6 && got[`udpd_datagrams_dropped_total{listener="m2",reason="loop_blocked"}`] == 2 {
			break
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
}

// source is a Source whose listeners a test changes between scrapes.
type source struct{ ls []manager.Listener }

func (s *source) List(string, int) ([]manager.Listener, bool) { return s.ls, false }

// TestCollectorFollowsChanges scrapes, changes a listener's addresses,
// removes one and adds one, and scrapes again: the second scrape shows the
// listeners as they are (the collector reuses labels between scrapes).
func TestCollectorFollowsChanges(t *testing.T) {
	src := &source{ls: []manager.Listener{
		{ID: "a", Address: "127.0.0.1:0", BoundAddress: netip.MustParseAddrPort("127.0.0.1:1000"), State: manager.StateRunning},
		{ID: "b", Address: "127.0.0.1:2000", BoundAddress: netip.MustParseAddrPort("127.0.0.1:2000"), State: manager.StateRunning},
	}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.New(src))
	info := func() []string {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mf := range mfs {
			if mf.GetName() != "udpd_listener_info" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var lv []string
				for _, lp := range m.GetLabel() {
					lv = append(lv, lp.GetName()+"="+lp.GetValue())
				}
				got = append(got, strings.Join(lv, ","))
			}
		}
		return got
	}
	want := []string{
		"address=127.0.0.1:0,bound_address=127.0.0.1:1000,listener=a",
		"address=127.0.0.1:2000,bound_address=127.0.0.1:2000,listener=b",
	}
	if got := info(); !slices.Equal(got, want) {
		t.Errorf("first scrape: got %q, want %q", got, want)
	}
	src.ls = []manager.Listener{
		{ID: "a", Address: "127.0.0.1:3000", BoundAddress: netip.MustParseAddrPort("127.0.0.1:3000"), State: manager.StateRunning},
		{ID: "c", Address: "[::1]:0", State: manager.StateDraining},
	}
	want = []string{
		"address=127.0.0.1:3000,bound_address=127.0.0.1:3000,listener=a",
		"address=[::1]:0,bound_address=,listener=c",
	}
	if got := info(); !slices.Equal(got, want) {
		t.Errorf("after a rebind, a stop and a start: got %q, want %q", got, want)
	}
}

// listSource is a Source with a fixed list.
type listSource []manager.Listener

func (s listSource) List(string, int) ([]manager.Listener, bool) { return s, false }

// TestDrainingListenerState: a draining listener is 1 in the draining
// state and not counted in udpd_listeners.
func TestDrainingListenerState(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.New(listSource{
		{ID: "up", State: manager.StateRunning, Generation: 1},
		{ID: "going", State: manager.StateDraining, Generation: 2},
	}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"udpd_listeners{}": 1,
		"udpd_listener_state{listener=up,state=running}":     1,
		"udpd_listener_state{listener=up,state=draining}":    0,
		"udpd_listener_state{listener=going,state=running}":  0,
		"udpd_listener_state{listener=going,state=draining}": 1,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}
