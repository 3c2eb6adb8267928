//go:build unix

package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/loadgen"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
	"github.com/udpd/udpd/service/sampler"
)

// BenchmarkWatchingCost measures what issue 14 asks of watching: with
// 1,000 listeners (one socket each), 64 WatchStats streams at 10 Hz plus
// a Prometheus scrape every second must cost under 3% of the data path's
// throughput. It loads one listener with the closed-loop load generator
// (8 flows × 16 in flight, 64 bytes) for 2 s without watchers and 2 s
// with them, in pairs of alternating order ($UDPD_BENCH_PAIRS, default
// 5), and reports the median ratio watched/plain (bar ≥ 0.97) with its
// spread, and cost-% = 100 × (1 − median). It also reports the CPU the
// watching takes on an idle daemon (watch-cpu-%, of one core) and the
// sampler's readings per second (reads/s, 10 however many streams).
// The watchers read their messages without decoding them, as udpctl
// processes of their own would. UDPD_WATCH_MODE=streams (or scrape)
// measures the streams (or the scrape) alone.
func BenchmarkWatchingCost(b *testing.B) {
	const listeners, streams = 1000, 64
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < listeners+300 {
		b.Skipf("needs %d open files, the limit is %d (ulimit -n)", listeners+300, lim.Cur)
	}
	pairs := 5
	if v, err := strconv.Atoi(os.Getenv("UDPD_BENCH_PAIRS")); err == nil && v > 0 {
		pairs = v
	}
	m := manager.New(manager.Options{Workers: 1, MaxListeners: listeners})
	b.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Shutdown(c)
	})
	var target manager.Listener
	for i := range listeners {
		l, err := m.Start(b.Context(), manager.Spec{ID: fmt.Sprintf("l%04d", i), Address: "127.0.0.1:0"}, "")
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			target = l
		}
	}
	// As the daemon with --metrics runs it: the status page's history on.
	smp := sampler.New(m, sampler.Options{History: 15 * time.Minute})
	sctx, stop := context.WithCancel(context.Background())
	b.Cleanup(stop)
	go smp.Run(sctx)
	e := serve(b, m, admin.Options{Sampler: smp})
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(m))
	scrapeSrv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	b.Cleanup(scrapeSrv.Close)

	load := func() float64 {
		r, err := loadgen.Run(b.Context(), loadgen.Config{Server: target.BoundAddress, Duration: 2 * time.Second, Flows: 8, Window: 16, Size: 64})
		if err != nil {
			b.Fatal(err)
		}
		if r.Lost > 0 {
			b.Logf("lost %d of %d", r.Lost, r.Sent)
		}
		return r.Rate
	}
	// watch opens the streams and the scraper and returns once every
	// stream has its first snapshot; the returned func stops them all.
	watch := func() (stop func()) {
		ctx, cancel := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		first := make(chan struct{}, streams)
		n := streams
		if os.Getenv("UDPD_WATCH_MODE") == "scrape" {
			n = 0
		}
		for range n {
			s, err := e.client.WatchStats(ctx, &adminv1.WatchStatsRequest{Interval: durationpb.New(100 * time.Millisecond)}, grpc.ForceCodecV2(undecoded{}))
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					if _, err := s.Recv(); err != nil {
						return
					}
					if n == 0 {
						first <- struct{}{}
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if os.Getenv("UDPD_WATCH_MODE") == "streams" {
				return
			}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				resp, err := http.Get(scrapeSrv.URL)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
		for range n {
			<-first
		}
		return func() { cancel(); wg.Wait() }
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}

	for b.Loop() {
		var ratios []float64
		for p := range pairs {
			var plain, watched float64
			run := func(watching bool) float64 {
				if !watching {
					return load()
				}
				stop := watch()
				defer stop()
				return load()
			}
			if p%2 == 0 {
				plain, watched = run(false), run(true)
			} else {
				watched, plain = run(true), run(false)
			}
			ratios = append(ratios, watched/plain)
			b.Logf("pair %d: plain %.0f/s, watched %.0f/s, ratio %.3f", p+1, plain, watched, watched/plain)
		}
		slices.Sort(ratios)
		median := ratios[len(ratios)/2]
		b.ReportMetric(median, "watched/plain")
		b.ReportMetric(ratios[0], "min-ratio")
		b.ReportMetric(ratios[len(ratios)-1], "max-ratio")
		b.ReportMetric(100*(1-median), "cost-%")

		// The watching alone, on an idle daemon: CPU per second of wall
		// time, and readings per second.
		idle := func(watching bool) (float64, float64) {
			if watching {
				defer watch()()
			}
			c0, r0, t0 := cpu(), smp.Reads(), time.Now()
			time.Sleep(3 * time.Second)
			wall := time.Since(t0)
			return float64(cpu()-c0) / float64(wall), float64(smp.Reads()-r0) / wall.Seconds()
		}
		base, _ := idle(false)
		busy, reads := idle(true)
		b.ReportMetric(100*(busy-base), "watch-cpu-%")
		b.ReportMetric(reads, "reads/s")
	}
}

// undecoded is a client codec that encodes requests and leaves replies
// undecoded: the benchmark's watchers stand for udpctl processes of their
// own, so decoding is not the daemon's cost.
type undecoded struct{}

func (undecoded) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (undecoded) Unmarshal(data mem.BufferSlice, v any) error { return nil }

func (undecoded) Name() string { return "proto" }
