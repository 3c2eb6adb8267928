package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// The monitoring files (deploy/monitoring/) must only use metrics and
// labels that udpd serves: TestMonitoringMatchesMetrics reads every
// PromQL expression in the Grafana dashboard and the Prometheus rules and
// checks each metric name, label name and exact label value against a
// live scrape of a real udpd. A renamed metric breaks this test, not a
// dashboard in production.

// rulesFile is the structure of a Prometheus rules file, decoded
// strictly: an unknown key is an error.
type rulesFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// The alerts the rules file must hold, by what an operator needs to know.
var wantAlerts = map[string]string{
	"UdpdDown":                  "udpd down",
	"UdpdKernelDropsRising":     "kernel drops rising",
	"UdpdLoopBlockedSurge":      "loop_blocked surging",
	"UdpdRateLimitedSurge":      "rate_limited surging",
	"UdpdRepliesTooLargeRising": "replies_too_large rising",
	"UdpdAdminErrors":           "admin errors",
	"UdpdListenerGone":          "a listener gone",
}

func TestRulesStructure(t *testing.T) {
	rf := readRules(t)
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	duration := regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	alertName := regexp.MustCompile(`^Udpd[A-Z][A-Za-z]+$`)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		if g.Interval != "" && !duration.MatchString(g.Interval) {
			t.Errorf("group %q: interval %q is not a Prometheus duration", g.Name, g.Interval)
		}
		for i, r := range g.Rules {
			if r.Alert == "" || r.Record != "" {
				t.Errorf("group %q rule %d: want an alerting rule (alert, no record)", g.Name, i)
				continue
			}
			if !alertName.MatchString(r.Alert) || seen[r.Alert] {
				t.Errorf("alert %q: want a unique UdpdCamelCase name", r.Alert)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" || strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("alert %s: expr %q empty or unbalanced", r.Alert, r.Expr)
			}
			if !duration.MatchString(r.For) {
				t.Errorf("alert %s: for %q is not a Prometheus duration", r.Alert, r.For)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a summary and a description", r.Alert)
			}
			for k, v := range r.Annotations {
				if strings.Count(v, "{{") != strings.Count(v, "}}") {
					t.Errorf("alert %s: annotation %s has unbalanced {{ }}", r.Alert, k)
				}
			}
		}
	}
	for name, what := range wantAlerts {
		if !seen[name] {
			t.Errorf("no alert %s (%s)", name, what)
		}
	}
	// promtool, where installed, checks the PromQL itself.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "rules", filepath.Join("monitoring", "udpd.rules.yml")).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	}
}

func readRules(t *testing.T) rulesFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("monitoring", "udpd.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("udpd.rules.yml: %v", err)
	}
	return rf
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	GridPos struct{ X, Y, W, H int } `json:"gridPos"`
}

// readDashboard returns the dashboard and every PromQL expression in it,
// by where it is.
func readDashboard(t *testing.T) (dashboard, map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("monitoring", "udpd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("udpd-dashboard.json: %v", err)
	}
	exprs := map[string]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] || p.Title == "" {
				t.Errorf("panel %d %q: want a unique id and a title", p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.Type != "row" && (len(p.Targets) == 0 || p.GridPos.W == 0 || p.GridPos.H == 0) {
				t.Errorf("panel %q: no query or no size", p.Title)
			}
			for _, q := range p.Targets {
				if q.RefID == "" || strings.TrimSpace(q.Expr) == "" {
					t.Errorf("panel %q: a target without refId or expr", p.Title)
				}
				exprs["panel "+p.Title+" "+q.RefID] = q.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s: query %q, want label_values(METRIC, LABEL)", v.Name, s)
			continue
		}
		// by (label) makes the label one the check looks for.
		exprs["variable "+v.Name] = "count by (" + m[2] + ") (" + m[1] + ")"
	}
	return d, exprs
}

func TestDashboardStructure(t *testing.T) {
	d, exprs := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard: title %q, uid %q: want both", d.Title, d.UID)
	}
	// What an operator looks for: per-listener rates, drop reasons,
	// kernel drops, admin calls and errors.
	all := ""
	for _, e := range exprs {
		all += e + "\n"
	}
	for _, want := range []string{
		`udpd_datagrams_received_total`, `udpd_datagrams_sent_total`, `sum by (listener)`,
		`sum by (reason)`, `reason="kernel"`, `grpc_server_handled_total`, `grpc_code!="OK"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no dashboard query uses %s", want)
		}
	}
}

// scrape is what a real udpd serves at /metrics: for each metric name,
// its label names and each label's values.
type scrape map[string]map[string]map[string]bool

func TestMonitoringMatchesMetrics(t *testing.T) {
	s := scrapeUdpd(t)
	_, exprs := readDashboard(t)
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions found; the parsers are broken", len(exprs))
	}
	for where, expr := range exprs {
		metrics, labels, values := promRefs(expr)
		if len(metrics) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		known := map[string]bool{"job": true, "instance": true} // target labels, added by Prometheus
		for _, m := range metrics {
			if m == "up" {
				continue // Prometheus's own, per target
			}
			ls, ok := s[m]
			if !ok {
				t.Errorf("%s: metric %s is not served by udpd (expr %q)", where, m, expr)
				continue
			}
			for l := range ls {
				known[l] = true
			}
		}
		for _, l := range labels {
			if !known[l] {
				t.Errorf("%s: label %s is on none of %v (expr %q)", where, l, metrics, expr)
			}
		}
		for l, v := range values {
			found := l == "job" || l == "instance"
			for _, m := range metrics {
				found = found || s[m][l][v]
			}
			if !found {
				t.Errorf("%s: no series of %v has %s=%q (expr %q)", where, metrics, l, v, expr)
			}
		}
	}
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	promBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promNumber   = regexp.MustCompile(`\b[0-9][0-9.e]*\b`)
	// PromQL's functions, aggregations and keywords that the files use;
	// any other word is taken for a metric name.
	promWords = map[string]bool{
		"sum": true, "max": true, "min": true, "avg": true, "count": true, "rate": true, "irate": true,
		"increase": true, "absent": true, "max_over_time": true, "histogram_quantile": true,
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	}
)

// promRefs returns the metric names a PromQL expression reads, the label
// names it matches or groups by, and the values it asks labels to equal
// exactly. Grafana's $variables stand for anything.
func promRefs(expr string) (metrics, labels []string, values map[string]string) {
	values = map[string]string{}
	for _, m := range promMatcher.FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[1])
		if m[2] == "=" && !strings.Contains(m[3], "$") {
			values[m[1]] = m[3]
		}
	}
	for _, m := range promGrouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	rest := promString.ReplaceAllString(expr, " ")
	rest = promBraces.ReplaceAllString(rest, " ")
	rest = promGrouping.ReplaceAllString(rest, " ")
	rest = promRange.ReplaceAllString(rest, " ")
	rest = promNumber.ReplaceAllString(rest, " ")
	for _, w := range promIdent.FindAllString(rest, -1) {
		if !promWords[w] && !slices.Contains(metrics, w) {
			metrics = append(metrics, w)
		}
	}
	return metrics, labels, values
}

func TestPromRefs(t *testing.T) {
	m, l, v := promRefs(`sum by (instance, listener) (increase(udpd_x_total{reason="kernel", listener=~"$l"}[10m])) > 0 unless on (instance) up{job="udpd"} == 1`)
	if strings.Join(m, " ") != "udpd_x_total up" || strings.Join(l, " ") != "reason listener job instance listener instance" || v["reason"] != "kernel" || v["job"] != "udpd" || len(v) != 2 {
		t.Errorf("promRefs: got metrics %v, labels %v, values %v", m, l, v)
	}
}

// scrapeUdpd builds and runs udpd with a listener that has answered a
// datagram and scrapes its /metrics once.
func scrapeUdpd(t *testing.T) scrape {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs a real udpd")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "udpd")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/udpd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ready := filepath.Join(dir, "ready")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state", "",
		"--metrics", "127.0.0.1:0", "--workers", "1", "--ready-file", ready)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var metrics, listener string
	for deadline := time.Now().Add(20 * time.Second); metrics == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("udpd not ready after 20s:\n%s", &stderr)
		}
		b, _ := os.ReadFile(ready)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && f[0] == "metrics" {
				metrics = f[1]
			}
			if len(f) == 3 && f[0] == "listener" {
				listener = f[2]
			}
		}
	}
	c, err := net.Dial("udp", listener)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("scrape me")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 64)); err != nil {
		t.Fatalf("no reply from udpd: %v", err)
	}

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := scrape{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sample.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if s[m[1]] == nil {
			s[m[1]] = map[string]map[string]bool{}
		}
		for _, lv := range label.FindAllStringSubmatch(m[3], -1) {
			if s[m[1]][lv[1]] == nil {
				s[m[1]][lv[1]] = map[string]bool{}
			}
			s[m[1]][lv[1]][lv[2]] = true
		}
	}
	if len(s["udpd_datagrams_received_total"]) == 0 {
		t.Fatalf("the scrape has no udpd_datagrams_received_total: %d metrics", len(s))
	}
	return s
}
