//go:build linux

package manager_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
	"github.com/udpd/udpd/service/state"
)

// BenchmarkThousandListeners measures what issue 4 asks of a daemon with
// 1,000 listeners (each with the default workers, one per CPU), saved to a
// real state file: the time to start them all (start-ms, bar 2000), the
// process's resident memory once idle (rss-MiB, bar 100), and the time to
// read every listener's stats (stats-ms, bar 50) and to scrape /metrics
// (scrape-ms).
func BenchmarkThousandListeners(b *testing.B) {
	benchListeners(b, 1000, 0)
}

// BenchmarkTenThousandListeners measures what issue 14 asks of a daemon
// with 10,000 listeners of one worker each: start-up from a real state
// file, loading it included (start-ms, bar 5000), idle resident memory of
// the whole test process (rss-MiB, bar 300), every listener's stats
// (stats-ms, bar 100) and a /metrics scrape (scrape-ms, bar 500; the
// next one, rescrape-ms, reuses the first one's labels and buffer). The
// *-cpu-ms figures are the process's CPU time for the same steps. It needs
// about 10,100 file descriptors.
func BenchmarkTenThousandListeners(b *testing.B) {
	benchListeners(b, 10000, 1)
}

func benchListeners(b *testing.B, n, workers int) {
	perListener := workers
	if perListener == 0 {
		perListener = runtime.GOMAXPROCS(0)
	}
	needFiles(b, 2*n*perListener+200)
	specs := make([]manager.Spec, n)
	for i := range specs {
		specs[i] = manager.Spec{ID: fmt.Sprintf("l%05d", i), Address: "127.0.0.1:0", Workers: workers}
	}
	var startMS, rssMiB, statsMS, scrapeMS, startCPU, statsCPU, scrapeCPU, rescrapeMS, rescrapeCPU float64
	for b.Loop() {
		b.StopTimer()
		store := &state.File{Path: filepath.Join(b.TempDir(), "state.json")}
		if err := store.Save(specs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0, c0 := time.Now(), cpu()
		saved, err := store.Load()
		if err != nil {
			b.Fatal(err)
		}
		m := manager.New(manager.Options{Store: store, MaxListeners: n})
		if _, err := m.Restore(context.Background(), saved); err != nil {
			b.Fatal(err)
		}
		startMS, startCPU = ms(time.Since(t0)), ms(cpu()-c0)
		runtime.GC()
		time.Sleep(100 * time.Millisecond)
		rssMiB = float64(rss(b)) / (1 << 20)

		t0, c0 = time.Now(), cpu()
		_, per, err := m.Stats("")
		if err != nil || len(per) != n {
			b.Fatalf("Stats: %d listeners, %v", len(per), err)
		}
		statsMS, statsCPU = ms(time.Since(t0)), ms(cpu()-c0)

		scrape := metrics.Handler(metrics.New(m), prometheus.NewRegistry())
		t0, c0 = time.Now(), cpu()
		rec := httptest.NewRecorder()
		scrape.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		scrapeMS, scrapeCPU = ms(time.Since(t0)), ms(cpu()-c0)
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != http.StatusOK || strings.Count(string(body), "udpd_listener_info{") != n {
			b.Fatalf("scrape: status %d, %d listeners, want 200 and %d", rec.Code, strings.Count(string(body), "udpd_listener_info{"), n)
		}
		// The next scrape reuses the labels and the buffer.
		t0, c0 = time.Now(), cpu()
		rec = httptest.NewRecorder()
		scrape.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		rescrapeMS, rescrapeCPU = ms(time.Since(t0)), ms(cpu()-c0)

		shutdownBench(b, m)
	}
	b.ReportMetric(startMS, "start-ms")
	b.ReportMetric(rssMiB, "rss-MiB")
	b.ReportMetric(statsMS, "stats-ms")
	b.ReportMetric(scrapeMS, "scrape-ms")
	b.ReportMetric(rescrapeMS, "rescrape-ms")
	b.ReportMetric(startCPU, "start-cpu-ms")
	b.ReportMetric(statsCPU, "stats-cpu-ms")
	b.ReportMetric(scrapeCPU, "scrape-cpu-ms")
	b.ReportMetric(rescrapeCPU, "rescrape-cpu-ms")
}

// BenchmarkSequentialStarts measures 1,000 Start calls one after the
// other, as an automation tool makes them, each saved to a real state
// file (fsync included) before it returns: all-ms is the whole run (bar
// 10000), last-ms the 100 last calls' mean (flat if a save does not grow
// with the listeners).
func BenchmarkSequentialStarts(b *testing.B) {
	const n = 1000
	needFiles(b, 2*n*runtime.GOMAXPROCS(0)+200)
	var allMS, firstMS, lastMS float64
	for b.Loop() {
		b.StopTimer()
		m := manager.New(manager.Options{Store: &state.File{Path: filepath.Join(b.TempDir(), "state.json")}, MaxListeners: n})
		b.StartTimer()
		t0 := time.Now()
		var tFirst, tLast time.Duration
		for i := range n {
			t := time.Now()
			if _, err := m.Start(context.Background(), manager.Spec{ID: fmt.Sprintf("l%05d", i), Address: "127.0.0.1:0"}, ""); err != nil {
				b.Fatal(err)
			}
			switch d := time.Since(t); {
			case i < 100:
				tFirst += d
			case i >= n-100:
				tLast += d
			}
		}
		allMS = ms(time.Since(t0))
		firstMS, lastMS = ms(tFirst)/100, ms(tLast)/100
		b.StopTimer()
		shutdownBench(b, m)
		b.StartTimer()
	}
	b.ReportMetric(allMS, "all-ms")
	b.ReportMetric(firstMS, "first-ms")
	b.ReportMetric(lastMS, "last-ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpu is the CPU time the process has used, user and system: on a busy
// machine the wall times above include waiting for a core, and this does
// not (it does include the garbage collector's work, on any thread).
func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// shutdownBench stops m and its listeners, within a minute.
func shutdownBench(b *testing.B, m *manager.Manager) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
}

// needFiles skips the benchmark when the process may not open n files.
// needFiles skips the benchmark unless n descriptors can be open. An idle
// worker holds two: its socket, and the duplicate it waits on in the
// network poller (see service/listener's wait_linux.go).
func needFiles(b *testing.B, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < uint64(n) {
		b.Skipf("needs %d open files, the limit is %d (ulimit -n)", n, lim.Cur)
	}
}

// rss is the process's resident set size in bytes, from /proc.
func rss(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Skip("no VmRSS")
	return 0
}

// BenchmarkApplyTenThousandListeners measures start-up from a
// configuration (ApplyConfig, udpctl config apply) of 10,000 listeners of
// one worker each on an empty daemon with a real state file (apply-ms, bar
// 5000), and applying the same configuration again, which changes nothing
// (reapply-ms).
func BenchmarkApplyTenThousandListeners(b *testing.B) {
	const n = 10000
	needFiles(b, 2*n+200)
	specs := make([]manager.Spec, n)
	for i := range specs {
		specs[i] = manager.Spec{ID: fmt.Sprintf("l%05d", i), Address: "127.0.0.1:0", Workers: 1}
	}
	var applyMS, applyCPU, reapplyMS float64
	for b.Loop() {
		b.StopTimer()
		m := manager.New(manager.Options{Store: &state.File{Path: filepath.Join(b.TempDir(), "state.json")}, MaxListeners: n})
		b.StartTimer()
		t0, c0 := time.Now(), cpu()
		plan, err := m.Apply(context.Background(), specs, manager.ApplyOptions{})
		if err != nil || len(plan.Changes) != n {
			b.Fatalf("Apply: %d changes, %v", len(plan.Changes), err)
		}
		applyMS, applyCPU = ms(time.Since(t0)), ms(cpu()-c0)
		t0 = time.Now()
		if plan, err := m.Apply(context.Background(), specs, manager.ApplyOptions{}); err != nil || len(plan.Changes) != 0 {
			b.Fatalf("Apply again: %d changes, %v", len(plan.Changes), err)
		}
		reapplyMS = ms(time.Since(t0))
		b.StopTimer()
		shutdownBench(b, m)
		b.StartTimer()
	}
	b.ReportMetric(applyMS, "apply-ms")
	b.ReportMetric(applyCPU, "apply-cpu-ms")
	b.ReportMetric(reapplyMS, "reapply-ms")
}
