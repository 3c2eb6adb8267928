//go:build unix

package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/state"
)

// BenchmarkStartTenThousand measures udpd's start-up with 10,000 listeners
// of one worker each, the whole of it (flags, the state lock, reading the
// file, binding the admin API, every listener, the one save): from a state
// file with --resume, and from a configuration file with --config
// (start-ms, bar 5000). The service/manager benchmarks measure the rest of
// issue 14's growth figures.
func BenchmarkStartTenThousand(b *testing.B) {
	const n = 10000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*n+300 { // an idle listener holds two descriptors
		b.Skipf("needs %d open files, the limit is %d (ulimit -n)", 2*n+300, lim.Cur)
	}
	specs := make([]manager.Spec, n)
	var yaml strings.Builder
	yaml.WriteString("listeners:\n")
	for i := range specs {
		specs[i] = manager.Spec{ID: fmt.Sprintf("l%05d", i), Address: "127.0.0.1:0"}
		fmt.Fprintf(&yaml, "  - id: %s\n    address: 127.0.0.1:0\n", specs[i].ID)
	}
	for _, tc := range []struct {
		name  string
		setup func(b *testing.B, dir string) []string // returns the flags
	}{
		{"state", func(b *testing.B, dir string) []string {
			f := &state.File{Path: filepath.Join(dir, "state.json")}
			if err := f.Save(specs); err != nil {
				b.Fatal(err)
			}
			return []string{"--resume", "--state", f.Path}
		}},
		{"config", func(b *testing.B, dir string) []string {
			path := filepath.Join(dir, "udpd.yaml")
			if err := os.WriteFile(path, []byte(yaml.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			return []string{"--config", path, "--state", filepath.Join(dir, "state.json")}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var startMS float64
			for b.Loop() {
				b.StopTimer()
				args := append([]string{"--admin", "127.0.0.1:0", "--workers", "1", "--max-listeners", fmt.Sprint(n)}, tc.setup(b, b.TempDir())...)
				b.StartTimer()
				t0 := time.Now()
				cfg, err := parseFlags(args, os.Stderr)
				if err != nil {
					b.Fatal(err)
				}
				d, err := start(context.Background(), cfg, quiet())
				if err != nil {
					b.Fatal(err)
				}
				startMS = float64(time.Since(t0).Microseconds()) / 1000
				b.StopTimer()
				if len(d.started) != n {
					b.Fatalf("started %d listeners, want %d", len(d.started), n)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if err := d.shutdown(ctx); err != nil {
					b.Fatal(err)
				}
				cancel()
				b.StartTimer()
			}
			b.ReportMetric(startMS, "start-ms")
		})
	}
}
