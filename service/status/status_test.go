package status_test

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
	"github.com/udpd/udpd/service/status"
)

// newServer serves the status handler over a real manager with one
// listener and a running sampler that keeps a history.
func newServer(t *testing.T, health func() string) (*httptest.Server, manager.Listener) {
	t.Helper()
	m := manager.New(manager.Options{Workers: 1})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(c)
	})
	l, err := m.Start(t.Context(), manager.Spec{ID: "web", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	smp := sampler.New(m, sampler.Options{History: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go smp.Run(ctx)
	start := time.Now().Add(-90 * time.Second)
	srv := httptest.NewServer(status.Handler(status.Options{Sampler: smp, Listeners: m.Describe, Version: "v9.8.7", Start: start, Health: health}))
	t.Cleanup(srv.Close)
	return srv, l
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestStatusJSON(t *testing.T) {
	srv, l := newServer(t, func() string { return "NOT_SERVING" })
	var doc status.Doc
	deadline := time.Now().Add(10 * time.Second)
	for {
		udptest.MustEcho(t, l.BoundAddress, "status")
		resp, body := get(t, srv.URL+"/status.json")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /status.json: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		doc = status.Doc{}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("status.json: %v\n%s", err, body)
		}
		if h, ok := doc.History.Listeners["web"]; ok && sum(h.Received) > 0 && sum(h.Sent) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no traffic in the history after 10 s:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if doc.Version != "v9.8.7" || doc.Health != "NOT_SERVING" || doc.UptimeSeconds < 90 {
		t.Errorf("version %q, health %q, uptime %v: want v9.8.7, NOT_SERVING, at least 90", doc.Version, doc.Health, doc.UptimeSeconds)
	}
	if len(doc.Listeners) != 1 {
		t.Fatalf("listeners: got %+v, want web", doc.Listeners)
	}
	row := doc.Listeners[0]
	if row.ID != "web" || row.Address != "127.0.0.1:0" || row.BoundAddress != l.BoundAddress.String() || row.Workers != 1 || row.State != "running" || row.Generation != 1 {
		t.Errorf("row: got %+v", row)
	}
	c := row.Counters
	if c.DatagramsReceived == 0 || c.DatagramsSent != c.DatagramsReceived || c.BytesReceived != 6*c.DatagramsReceived || c.BytesSent != c.BytesReceived {
		t.Errorf("counters: got %+v, want datagrams of 6 bytes, all answered", c)
	}
	if doc.Total.DatagramsReceived < c.DatagramsReceived {
		t.Errorf("total: got %+v, want at least the listener's", doc.Total)
	}
	n := len(doc.History.Times)
	for name, s := range map[string][]float64{"total received": doc.History.Total.Received, "web sent": doc.History.Listeners["web"].Sent, "web dropped": doc.History.Listeners["web"].Dropped} {
		if len(s) != n {
			t.Errorf("%s: %d values for %d times", name, len(s), n)
		}
	}
	if sum(doc.History.Listeners["web"].Dropped) != 0 {
		t.Errorf("web dropped: got %v, want zeros", doc.History.Listeners["web"].Dropped)
	}
	for i := 1; i < n; i++ {
		if d := doc.History.Times[i] - doc.History.Times[i-1]; d < 500 || d > 5000 {
			t.Errorf("times %d and %d are %d ms apart, want about 1000", i-1, i, d)
		}
	}

	// ?seconds=N keeps the last N samples; a bad N is a 400.
	_, body := get(t, srv.URL+"/status.json?seconds=1")
	var one status.Doc
	if err := json.Unmarshal(body, &one); err != nil || len(one.History.Times) != 1 || len(one.History.Listeners["web"].Received) != 1 {
		t.Errorf("?seconds=1: got %v times, %v", one.History.Times, err)
	}
	for _, q := range []string{"0", "-1", "x"} {
		if resp, _ := get(t, srv.URL+"/status.json?seconds="+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("?seconds=%s: got %s, want 400", q, resp.Status)
		}
	}
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

// TestPage checks the page and its files: served from the binary with a
// policy that allows nothing from elsewhere, and nothing else served.
func TestPage(t *testing.T) {
	srv, _ := newServer(t, nil)
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy: got %q", csp)
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(body), -1) {
		if ref[1] == "metrics" {
			continue // the daemon serves it beside the page
		}
		url := srv.URL + "/" + ref[1]
		if r, _ := get(t, url); r.StatusCode != http.StatusOK {
			t.Errorf("the page refers to %s: %s", ref[1], r.Status)
		}
	}
	for _, path := range []string{"/static/status.js", "/static/status.css"} {
		if r, _ := get(t, srv.URL+path); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, r.Status)
		}
	}
	for _, path := range []string{"/nope", "/static/", "/static/../status.go", "/index.html"} {
		if r, _ := get(t, srv.URL+path); r.StatusCode == http.StatusOK {
			t.Errorf("GET %s: got 200, want nothing served", path)
		}
	}
	if r, _ := get(t, srv.URL+"/status.json"); !strings.Contains(r.Header.Get("Content-Type"), "json") {
		t.Errorf("status.json type: %q", r.Header.Get("Content-Type"))
	}
}

// TestNothingFromElsewhere reads the embedded files: no URL but the SVG
// namespace (a name, never fetched), so the page needs no network.
func TestNothingFromElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := filepath.WalkDir("static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, u := range url.FindAllString(string(b), -1) {
			if u != "http://www.w3.org" { // the SVG namespace: a name, never fetched
				t.Errorf("%s refers to %s", path, u)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
