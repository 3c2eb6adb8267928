package admin_test

import (
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
)

// The flooder is this test binary run again with floodEnv set to a UDP
// address: it sends 64-byte datagrams there as fast as it can, 64 to a
// system call (UDP_SEGMENT), for floodFor at most or until its stdin
// closes. A process of its own, so that what it costs is not the
// daemon's runtime's.
const (
	floodEnv = "UDPD_TEST_FLOOD"
	floodFor = 60 * time.Second
)

func init() {
	if addr := os.Getenv(floodEnv); addr != "" {
		if err := flood(addr); err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func flood(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, 64) })
	if serr != nil {
		return fmt.Errorf("setsockopt UDP_SEGMENT: %w", serr)
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	buf := []byte(strings.Repeat("flood of lower-case datagrams, sixty-four bytes long, and more.\n", 64))
	for until := time.Now().Add(floodFor); time.Now().Before(until); {
		select {
		case <-stop:
			return nil
		default:
		}
		c.Write(buf) // ECONNREFUSED once the listener is gone: keep going until told
	}
	return nil
}

// startFlood floods addr from another process until the test ends.
func startFlood(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), floodEnv+"="+addr.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("flooder: %v", err)
		}
	})
}

// TestBusyWorkerDoesNotStallDaemon keeps one worker busy without pause (a
// listener whose socket another process fills faster than it drains:
// its kernel drop count grows) and meanwhile makes admin calls, scrapes
// the metrics, answers through another listener and runs the garbage
// collector: all of them must complete, also when the busy worker and
// everything else share one P (GOMAXPROCS=1). The latencies of the admin
// calls are logged (go test -v), not asserted.
func TestBusyWorkerDoesNotStallDaemon(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			e := newEnv(t, manager.Options{})
			busy := boundAddr(t, e.start(t, &adminv1.StartListenerRequest{Id: "busy", Address: "127.0.0.1:0"}))
			other := boundAddr(t, e.start(t, &adminv1.StartListenerRequest{Id: "other", Address: "127.0.0.1:0"}))
			reg := prometheus.NewRegistry()
			reg.MustRegister(metrics.New(e.m))
			scrape := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			defer scrape.Close()
			stats := func() *adminv1.Stats {
				t.Helper()
				resp, err := e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{ListenerId: "busy"})
				if err != nil {
					t.Fatalf("GetStats: %v", err)
				}
				return resp.GetTotal()
			}

			startFlood(t, busy)
			// Busy means a full queue: wait until the kernel drops datagrams.
			var before *adminv1.Stats
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if before = stats(); before.GetKernelDrops() > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the flood never filled the busy listener's queue: %v", before)
				}
			}

			const rounds = 100
			var lat []time.Duration
			stop := time.Now().Add(30 * time.Second) // bounds the test, not the calls
			for i := 0; i < rounds && time.Now().Before(stop); i++ {
				t0 := time.Now()
				if _, err := e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{}); err != nil {
					t.Fatalf("round %d: GetStats: %v", i, err)
				}
				lat = append(lat, time.Since(t0))
				t0 = time.Now()
				if _, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{}); err != nil {
					t.Fatalf("round %d: ListListeners: %v", i, err)
				}
				lat = append(lat, time.Since(t0))
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
			after := stats()
			if after.GetKernelDrops() <= before.GetKernelDrops() || after.GetDatagramsReceived() <= before.GetDatagramsReceived() {
				t.Fatalf("busy listener: received %d → %d, kernel drops %d → %d: the queue was not kept full, so the test proved nothing",
					before.GetDatagramsReceived(), after.GetDatagramsReceived(), before.GetKernelDrops(), after.GetKernelDrops())
			}
			slices.Sort(lat)
			pct := func(p int) time.Duration { return lat[(len(lat)-1)*p/100] }
			t.Logf("%d admin calls while the busy worker answered %d datagrams (and the kernel dropped %d): p50 %v, p90 %v, p99 %v, max %v",
				len(lat), after.GetDatagramsReceived()-before.GetDatagramsReceived(), after.GetKernelDrops()-before.GetKernelDrops(),
				pct(50), pct(90), pct(99), lat[len(lat)-1])
		})
	}
}
