//go:build linux

package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/internal/testhook"
	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
)

const (
	// yieldAfter mirrors service/listener's: a worker whose queue never
	// empties yields to the scheduler every yieldAfter datagrams.
	yieldAfter = 256
	// selfLoopDatagrams circulate in a self-loop: enough that the
	// worker's queue is never empty (a read takes what the last send
	// put there), few enough that the socket's buffer never drops one.
	selfLoopDatagrams = 64
	// selfLoopPayload is short, so that the worker spends its time on the
	// system calls, which the race detector does not slow, and already
	// upper case: the reply is the request.
	selfLoopPayload = "BUSY"
)

// startSelfLoop makes a listener that answers itself for ever: its socket
// is sent selfLoopDatagrams from its own address before the manager adopts
// it with its loop guards off (testhook.NoLoopGuards), so every reply
// lands in its own receive queue and its worker never waits. It returns
// the listener's id.
func startSelfLoop(t *testing.T, m *manager.Manager, id string) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), id)
	defer f.Close() // Adopt duplicates it
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	self, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	for range selfLoopDatagrams {
		if err := unix.Sendto(fd, []byte(selfLoopPayload), 0, self); err != nil {
			t.Fatalf("send to itself: %v", err)
		}
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4(self.(*unix.SockaddrInet4).Addr), uint16(self.(*unix.SockaddrInet4).Port))
	testhook.NoLoopGuards.Store(true)
	_, err = m.Adopt([]manager.Adopted{{Spec: manager.Spec{ID: id, Address: addr.String()}, Files: []*os.File{f}}})
	testhook.NoLoopGuards.Store(false)
	if err != nil {
		t.Fatalf("adopt the self-loop: %v", err)
	}
	t.Cleanup(func() { m.Stop(context.Background(), id, time.Millisecond) })
	return id
}

// TestBusyWorkerDoesNotStallDaemon keeps workers busy without pause: a
// listener that answers itself (startSelfLoop) per P, so that every P runs
// a worker whose queue never empties. Meanwhile it makes admin calls,
// scrapes the metrics, answers through another listener and runs the
// garbage collector. Each admin call's latency is measured in datagrams:
// how many the busy workers handled, each, while the call ran. A worker
// that yields every yieldAfter datagrams lets a call through after a few
// yields, one per network hop of the call; one that does not yield holds
// every goroutine the network wakes until the runtime preempts it (10 ms,
// thousands of datagrams, per hop). Wall times are logged (go test -v),
// not asserted.
func TestBusyWorkerDoesNotStallDaemon(t *testing.T) {
	t.Cleanup(func() { testhook.NoLoopGuards.Store(false) })
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			e := newEnv(t, manager.Options{})
			other := boundAddr(t, e.start(t, &adminv1.StartListenerRequest{Id: "other", Address: "127.0.0.1:0"}))
			scrape := httptest.NewServer(metrics.Handler(metrics.New(e.m), prometheus.NewRegistry()))
			defer scrape.Close()

			var busy []string
			for i := range procs {
				busy = append(busy, startSelfLoop(t, e.m, fmt.Sprintf("busy-%d", i)))
			}
			// handled is what the busy listeners have received so far, in
			// all and each.
			handled := func() (sum uint64, each []uint64) {
				t.Helper()
				_, per, err := e.m.Stats("")
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range per {
					if slices.Contains(busy, s.ID) {
						sum += s.Stats.DatagramsReceived
						each = append(each, s.Stats.DatagramsReceived)
					}
				}
				return sum, each
			}
			// Busy means a self-loop that runs: every busy listener's count
			// has passed what was sent to it.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				_, each := handled()
				if len(each) == procs && slices.Min(each) > 10*selfLoopDatagrams {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the self-loops do not run: received %v", each)
				}
			}

			var (
				cost []uint64        // datagrams each busy worker handled (mean) during each admin call
				wall []time.Duration // each admin call's wall time
			)
			call := func(f func() error) error {
				d0, _ := handled()
				t0 := time.Now()
				err := f()
				wall = append(wall, time.Since(t0))
				d1, _ := handled()
				cost = append(cost, (d1-d0)/uint64(procs))
				return err
			}
			const rounds = 60
			stop := time.Now().Add(30 * time.Second) // bounds the test, not the calls
			start, startEach := handled()
			for i := 0; i < rounds && time.Now().Before(stop); i++ {
				if err := call(func() error {
					_, err := e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{})
					return err
				}); err != nil {
					t.Fatalf("round %d: GetStats: %v", i, err)
				}
				if err := call(func() error {
					_, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{})
					return err
				}); err != nil {
					t.Fatalf("round %d: ListListeners: %v", i, err)
				}
				udptest.MustEcho(t, other, fmt.Sprintf("round %d", i))
				if i%10 == 0 {
					resp, err := scrape.Client().Get(scrape.URL)
					if err != nil {
						t.Fatalf("round %d: scrape: %v", i, err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || !strings.Contains(string(body), `udpd_datagrams_received_total{listener="other"}`) {
						t.Fatalf("round %d: scrape: %v, body without the other listener's counter:\n%.2000s", i, err, body)
					}
					runtime.GC()
				}
			}
			end, endEach := handled()

			// Busy without pause. Each busy worker kept handling
			// datagrams, and it never waited for one: it answered every
			// datagram it received, to itself, and neither it nor the
			// kernel dropped one, so all selfLoopDatagrams circulated until
			// the end, and each read found in the queue every one the
			// worker was not holding, which was none: it sends all it
			// holds before it reads again or yields.
			for j, id := range busy {
				if endEach[j] <= startEach[j] {
					t.Errorf("%s received %d datagrams before and after the admin calls: the self-loop stopped, so the test proved nothing", id, endEach[j])
				}
				l, err := e.m.Stop(ctx(t), id, time.Millisecond)
				if err != nil {
					t.Fatalf("stop %s: %v", id, err)
				}
				if s := l.Stats; s.DatagramsSent != s.DatagramsReceived || s.Dropped() != 0 || s.KernelDrops != 0 {
					t.Errorf("%s: %+v: want every datagram answered and none dropped, or its worker may have waited", id, s)
				}
			}

			sorted := slices.Clone(cost)
			slices.Sort(sorted)
			slices.Sort(wall)
			median, p90 := sorted[len(sorted)/2], sorted[len(sorted)*9/10]
			pct := func(p int) time.Duration { return wall[(len(wall)-1)*p/100] }
			t.Logf("%d admin calls while %d busy workers each handled %d datagrams: datagrams per busy worker per call: median %d, p90 %d, max %d (yieldAfter %d); wall time p50 %v, p90 %v, p99 %v, max %v",
				len(cost), procs, (end-start)/uint64(procs), median, p90, sorted[len(sorted)-1], yieldAfter,
				pct(50), pct(90), pct(99), wall[len(wall)-1])
			// A call takes a few network hops (client to server and back),
			// each after about one yield of the busy worker (measured, also
			// with -race: a median of 2 to 3 × yieldAfter, a p90 of at most
			// 9 × yieldAfter with two Ps). A worker that does not yield makes a hop wait
			// until the runtime preempts it: a median of about 1,200 ×
			// yieldAfter with one P; with two, it keeps the other P free
			// for most calls, so the median stays low and the p90 grows
			// (over 600 × yieldAfter).
			if limit := uint64(8 * yieldAfter); median > limit {
				t.Errorf("the median admin call waited for %d datagrams of each busy worker, want at most %d (8 × yieldAfter): a busy worker stalls the daemon", median, limit)
			}
			if limit := uint64(32 * yieldAfter); p90 > limit {
				t.Errorf("one admin call in ten waited for %d datagrams of each busy worker or more, want at most %d (32 × yieldAfter): a busy worker stalls the daemon", p90, limit)
			}
		})
	}
}
