package manager_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/state"
)

// BenchmarkThousandListeners measures what issue 4 asks of a daemon with
// 1,000 listeners (each with the default workers, one per CPU), saved to a
// real state file: the time to start them all (start-ms, bar 2000), the
// process's resident memory once idle (rss-MiB, bar 100), and the time to
// read every listener's stats (stats-ms, bar 50).
func BenchmarkThousandListeners(b *testing.B) {
	specs := make([]manager.Spec, 1000)
	for i := range specs {
		specs[i] = manager.Spec{ID: fmt.Sprintf("l%04d", i), Address: "127.0.0.1:0"}
	}
	var startMS, rssMiB, statsMS float64
	for b.Loop() {
		m := manager.New(manager.Options{Store: &state.File{Path: filepath.Join(b.TempDir(), "state.json")}})
		t0 := time.Now()
		if _, err := m.Restore(context.Background(), specs); err != nil {
			b.Fatal(err)
		}
		startMS = float64(time.Since(t0).Microseconds()) / 1000
		runtime.GC()
		time.Sleep(100 * time.Millisecond)
		rssMiB = float64(rss(b)) / (1 << 20)
		t0 = time.Now()
		_, per, err := m.Stats("")
		if err != nil || len(per) != len(specs) {
			b.Fatalf("Stats: %d listeners, %v", len(per), err)
		}
		statsMS = float64(time.Since(t0).Microseconds()) / 1000
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := m.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.ReportMetric(startMS, "start-ms")
	b.ReportMetric(rssMiB, "rss-MiB")
	b.ReportMetric(statsMS, "stats-ms")
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
