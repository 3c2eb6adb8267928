//go:build linux

package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
// (8 flows × 16 in flight, 64 bytes) for $UDPD_BENCH_LOAD (default 2 s)
// without watchers and as long with them, in pairs of alternating order
// ($UDPD_BENCH_PAIRS, default 5; 0 skips them), and reports the median
// ratio watched/plain (bar ≥ 0.97) with its spread, and cost-% = 100 ×
// (1 − median). Then, on the idle daemon for $UDPD_BENCH_IDLE (default
// 3 s): the CPU the watching takes in the daemon (watch-cpu-%, of one
// core) and in the watchers (watchers-cpu-%), and the sampler's readings
// per second (reads/s, 10 however many streams).
//
// The watchers, the streams and the scraper, are a process of their own,
// as udpctl and Prometheus would be; with two CPUs or more the daemon and
// its load run on CPU 0 and the watchers on CPU 1 (see pin). The streams
// ask for changes only, as udpctl does; UDPD_WATCH_FULL=1 asks for every
// listener in every message. UDPD_WATCH_MODE=streams (or scrape) measures
// the streams (or the scrape) alone, and UDPD_WATCH_ID=l0001 makes the
// streams watch that one listener.
func BenchmarkWatchingCost(b *testing.B) {
	const listeners, streams = 1000, 64
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*listeners+300 { // an idle listener holds two descriptors
		b.Skipf("needs %d open files, the limit is %d (ulimit -n)", 2*listeners+300, lim.Cur)
	}
	pairs, idleFor, loadFor := 5, 3*time.Second, 2*time.Second
	if v, err := time.ParseDuration(os.Getenv("UDPD_BENCH_LOAD")); err == nil && v > 0 {
		loadFor = v
	}
	if v, err := time.ParseDuration(os.Getenv("UDPD_BENCH_IDLE")); err == nil && v > 0 {
		idleFor = v
	}
	if v, err := strconv.Atoi(os.Getenv("UDPD_BENCH_PAIRS")); err == nil && v >= 0 {
		pairs = v
	}
	// On two CPUs or more, the daemon and its load share CPU 0 and the
	// watchers run on CPU 1, as clients on other machines would: what the
	// watching costs the data path is then the daemon's part alone.
	// UDPD_BENCH_PIN=0 leaves the scheduler free.
	watchCPU := -1
	if runtime.NumCPU() >= 2 && os.Getenv("UDPD_BENCH_PIN") != "0" {
		if err := pin(0); err != nil {
			b.Fatal(err)
		}
		watchCPU = 1
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
	// As the daemon serves /metrics.
	scrapeSrv := httptest.NewServer(metrics.Handler(metrics.New(m), prometheus.NewRegistry()))
	b.Cleanup(scrapeSrv.Close)

	load := func() float64 {
		r, err := loadgen.Run(b.Context(), loadgen.Config{Server: target.BoundAddress, Duration: loadFor, Flows: 8, Window: 16, Size: 64})
		if err != nil {
			b.Fatal(err)
		}
		if r.Lost > 0 {
			b.Logf("lost %d of %d", r.Lost, r.Sent)
		}
		return r.Rate
	}
	// watch starts the watchers (another process, see watchers) and
	// returns once every stream has its first snapshot; the returned func
	// stops them and returns the CPU time they used.
	watch := func() (stop func() time.Duration) {
		mode := os.Getenv("UDPD_WATCH_MODE")
		n, url := streams, scrapeSrv.URL
		switch mode {
		case "scrape":
			n = 0
		case "streams":
			url = ""
		}
		w := startWatchers(b, watchersConfig{Admin: e.conn.Target(), Streams: n, ListenerID: os.Getenv("UDPD_WATCH_ID"), Full: os.Getenv("UDPD_WATCH_FULL") != "", Scrape: url, CPU: watchCPU})
		return func() time.Duration {
			used := w.stop()
			// The server ends its streams after the client has: wait
			// for their places, so that the next watch has them all.
			for smp.Watchers() > 0 {
				time.Sleep(time.Millisecond)
			}
			return used
		}
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
				defer watch()()
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
		if pairs > 0 {
			slices.Sort(ratios)
			median := ratios[len(ratios)/2]
			b.ReportMetric(median, "watched/plain")
			b.ReportMetric(ratios[0], "min-ratio")
			b.ReportMetric(ratios[len(ratios)-1], "max-ratio")
			b.ReportMetric(100*(1-median), "cost-%")
		}

		// The watching alone, on an idle daemon: CPU per second of wall
		// time, the daemon's and the watchers', and readings per second.
		idle := func(watching bool) (daemon, watchers, reads float64) {
			var stop func() time.Duration
			if watching {
				stop = watch()
			}
			c0, r0, t0 := cpu(), smp.Reads(), time.Now()
			time.Sleep(idleFor)
			wall := time.Since(t0)
			daemon, reads = float64(cpu()-c0)/float64(wall), float64(smp.Reads()-r0)/wall.Seconds()
			if stop != nil {
				watchers = float64(stop()) / float64(wall)
			}
			return daemon, watchers, reads
		}
		base, _, _ := idle(false)
		busy, watchers, reads := idle(true)
		b.ReportMetric(100*(busy-base), "watch-cpu-%")
		b.ReportMetric(100*watchers, "watchers-cpu-%")
		b.ReportMetric(reads, "reads/s")
	}
}

// The watchers are this test binary run again with watchersEnv set to a
// watchersConfig in JSON: the WatchStats streams and the scraper, in a
// process of their own, as udpctl and Prometheus would be, so that their
// garbage and their CPU are not the daemon's. It prints "ready" once every
// stream has its first snapshot, and stops when its stdin closes.
const watchersEnv = "UDPD_BENCH_WATCHERS"

type watchersConfig struct {
	Admin      string // the admin API's address
	Streams    int    // WatchStats streams at 10 Hz
	ListenerID string // what they watch; empty: all listeners
	Full       bool   // every listener in every message, not changes_only
	Scrape     string // a URL scraped once a second; empty: none
	CPU        int    // the CPU the watchers run on; -1: any
}

func init() {
	if v := os.Getenv(watchersEnv); v != "" {
		var c watchersConfig
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			fmt.Fprintln(os.Stderr, "watchers:", err)
			os.Exit(1)
		}
		if err := runWatchers(c); err != nil {
			fmt.Fprintln(os.Stderr, "watchers:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func runWatchers(c watchersConfig) error {
	if c.CPU >= 0 {
		if err := pin(c.CPU); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := grpc.NewClient(c.Admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := adminv1.NewListenerServiceClient(conn)
	first := make(chan error, c.Streams)
	for range c.Streams {
		s, err := client.WatchStats(ctx, &adminv1.WatchStatsRequest{ListenerId: c.ListenerID, Interval: durationpb.New(100 * time.Millisecond), ChangesOnly: !c.Full})
		if err != nil {
			return err
		}
		go func() {
			for n := 0; ; n++ {
				_, err := s.Recv()
				if n == 0 {
					first <- err
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for range c.Streams {
		if err := <-first; err != nil {
			return fmt.Errorf("WatchStats: %w", err)
		}
	}
	if c.Scrape != "" {
		go func() {
			for t := time.NewTicker(time.Second); ; <-t.C {
				if resp, err := http.Get(c.Scrape); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	fmt.Println("ready")
	c0 := cpuTime()
	io.Copy(io.Discard, os.Stdin)
	fmt.Println(int64(cpuTime() - c0))
	return nil
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pin moves every thread of this process to one CPU; threads made later
// inherit it from their maker.
func pin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
		}
	}
	return nil
}

type watchers struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stdout *bufio.Reader
}

// startWatchers starts the watchers' process and waits until it is ready.
func startWatchers(b *testing.B, c watchersConfig) *watchers {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	js, _ := json.Marshal(c)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), watchersEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || line != "ready\n" {
		stdin.Close()
		cmd.Wait()
		b.Fatalf("watchers: %q, %v", line, err)
	}
	return &watchers{cmd: cmd, stdin: stdin, stdout: out}
}

// stop stops the watchers and returns the CPU time they used once ready.
func (w *watchers) stop() time.Duration {
	w.stdin.Close()
	var ns int64
	_, err := fmt.Fscanln(w.stdout, &ns)
	if werr := w.cmd.Wait(); werr != nil || err != nil {
		panic(fmt.Sprintf("watchers: %v, %v", werr, err))
	}
	return time.Duration(ns)
}
