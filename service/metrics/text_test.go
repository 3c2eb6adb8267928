package metrics_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
)

// escapingSource has listeners whose ids and addresses need escaping in
// the text format, in both states, with a distinct value in every counter.
var escapingSource = listSource{
	{ID: `a"quoted"`, Address: "[fe80::1%eth0]:53", BoundAddress: netip.MustParseAddrPort("[fe80::1%eth0]:53"), State: manager.StateRunning, Generation: 1,
		Stats: listener.Stats{DatagramsReceived: 1, DatagramsSent: 2, BytesReceived: 3, BytesSent: 4, ReadErrors: 5,
			KernelDrops: 6, LoopBlocked: 7, RateLimited: 8, SendErrors: 9, RepliesTooLarge: 10}},
	{ID: `back\slash`, Address: `127.0.0.1:0`, BoundAddress: netip.MustParseAddrPort("127.0.0.1:4000"), State: manager.StateDraining, Generation: 3,
		Stats: listener.Stats{DatagramsReceived: 1 << 40, BytesReceived: 123456789012, BytesSent: 1<<53 + 1}},
	{ID: "new\nline", Address: "[::1]:0", State: manager.StateDraining, Generation: 2},
	{ID: "plain", Address: `"odd\address` + "\n", BoundAddress: netip.MustParseAddrPort("[2001:db8::1%2]:9"), State: manager.StateRunning, Generation: 7,
		Stats: listener.Stats{DatagramsReceived: 42, DatagramsSent: 41}},
}

// others are families the registry holds beside the Collector's, named to
// sort before, among and after them.
func others() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, name := range []string{"aaa_first", "udpd_build_info", "udpd_m_between", "zzz_last"} {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: `Help with \ and` + "\nnewline."}, []string{"v"})
		g.WithLabelValues(`x"y\z`).Set(2.5)
		cs = append(cs, g)
	}
	return cs
}

// TestHandlerMatchesRegistry parses what Handler serves and compares it,
// family by family, with what the registry gathers from the same
// listeners through the Collector: names, HELP, TYPE, labels and values.
func TestHandlerMatchesRegistry(t *testing.T) {
	old := prometheus.NewPedanticRegistry()
	old.MustRegister(metrics.New(escapingSource))
	old.MustRegister(others()...)
	promhttp.HandlerFor(old, promhttp.HandlerOpts{Registry: old}) // as Handler does: registers its errors counter
	want, err := old.Gather()
	if err != nil {
		t.Fatal(err)
	}

	rest := prometheus.NewPedanticRegistry()
	rest.MustRegister(others()...)
	h := metrics.Handler(metrics.New(escapingSource), rest)
	// The second scrape reuses labels and a buffer; the third and the
	// fourth are gzipped, the fourth with the third's compressor.
	for scrape := range 4 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if scrape >= 2 {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		h.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8; escaping=underscores" {
			t.Errorf("scrape %d: Content-Type %q", scrape, ct)
		}
		var r io.Reader = rec.Body
		if ce := rec.Header().Get("Content-Encoding"); (ce == "gzip") != (scrape >= 2) {
			t.Fatalf("scrape %d: Content-Encoding %q", scrape, ce)
		} else if ce == "gzip" {
			if r, err = gzip.NewReader(r); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		body := string(raw)
		p := expfmt.NewTextParser(model.LegacyValidation)
		got, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("scrape %d: parse: %v\n%s", scrape, err, body)
		}
		compare(t, got, want)
		// Each family once, in the order of the names.
		var names []string
		for _, line := range strings.Split(body, "\n") {
			if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
				names = append(names, strings.Fields(name)[0])
			}
		}
		if !slices.IsSorted(names) || len(names) != len(want) {
			t.Errorf("scrape %d: families %v, want %d sorted", scrape, names, len(want))
		}
	}
}

// TestAppendTextMatchesCollector compares AppendText alone with what the
// registry gathers from the Collector, with listeners and without.
func TestAppendTextMatchesCollector(t *testing.T) {
	for _, src := range []listSource{escapingSource, nil} {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(metrics.New(src))
		want, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		text := metrics.New(src).AppendText(nil)
		p := expfmt.NewTextParser(model.LegacyValidation)
		got, err := p.TextToMetricFamilies(bytes.NewReader(text))
		if err != nil {
			t.Fatalf("%d listeners: parse: %v\n%s", len(src), err, text)
		}
		compare(t, got, want)
		// The parser drops families without series: count them here.
		if n := bytes.Count(text, []byte("# TYPE ")); n != len(want) {
			t.Errorf("%d listeners: %d families, want %d:\n%s", len(src), n, len(want), text)
		}
	}
}

// TestHandlerProtobuf: a scraper that asks for protobuf gets it, with the
// same families (through promhttp's ordinary path).
func TestHandlerProtobuf(t *testing.T) {
	old := prometheus.NewPedanticRegistry()
	old.MustRegister(metrics.New(escapingSource))
	old.MustRegister(others()...)
	promhttp.HandlerFor(old, promhttp.HandlerOpts{Registry: old}) // as Handler does: registers its errors counter
	want, err := old.Gather()
	if err != nil {
		t.Fatal(err)
	}
	rest := prometheus.NewPedanticRegistry()
	rest.MustRegister(others()...)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	metrics.Handler(metrics.New(escapingSource), rest).ServeHTTP(rec, req)
	f := expfmt.ResponseFormat(rec.Header())
	if f.FormatType() != expfmt.TypeProtoDelim {
		t.Fatalf("Content-Type %q, want protobuf", rec.Header().Get("Content-Type"))
	}
	got := map[string]*dto.MetricFamily{}
	dec := expfmt.NewDecoder(bytes.NewReader(rec.Body.Bytes()), f)
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got[mf.GetName()] = mf
	}
	compare(t, got, want)
}

// compare checks that got has exactly want's families, each with the same
// HELP, TYPE and series (in any order).
func compare(t *testing.T, got map[string]*dto.MetricFamily, want []*dto.MetricFamily) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d families, want %d", len(got), len(want))
	}
	for _, w := range want {
		g := got[w.GetName()]
		if g == nil {
			t.Errorf("%s: missing", w.GetName())
			continue
		}
		if g.GetHelp() != w.GetHelp() || g.GetType() != w.GetType() {
			t.Errorf("%s: HELP %q TYPE %v, want %q %v", w.GetName(), g.GetHelp(), g.GetType(), w.GetHelp(), w.GetType())
		}
		gs, ws := seriesOf(g), seriesOf(w)
		if len(gs) != len(ws) {
			t.Errorf("%s: %d series, want %d", w.GetName(), len(gs), len(ws))
		}
		for k, m := range ws {
			if !proto.Equal(gs[k], m) {
				t.Errorf("%s%s: got %v, want %v", w.GetName(), k, gs[k], m)
			}
		}
	}
}

// seriesOf returns a family's series by their labels, without the
// counters' created timestamps (the text format has none).
func seriesOf(mf *dto.MetricFamily) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	for _, m := range mf.GetMetric() {
		m = proto.CloneOf(m)
		if m.Counter != nil {
			m.Counter.CreatedTimestamp = nil
		}
		var k strings.Builder
		for _, l := range m.GetLabel() {
			k.WriteString(l.GetName() + "=" + strings.ReplaceAll(l.GetValue(), ",", `\,`) + ",")
		}
		out[k.String()] = m
	}
	return out
}
