package loadgen

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/udpd/udpd/service/uppercase"
)

// server is a tiny uppercase server for the tests: one goroutine, one
// socket, replying with whatever answer returns (nil: no reply).
type server struct {
	conn *net.UDPConn
	done chan struct{}
	// Written by the server goroutine; read after stop.
	requests int
	seen     map[string]bool // client address + request, with track
	dups     int
}

type answerFunc func(i int, req, buf []byte) []byte

// upper answers like udpd.
func upper(_ int, req, buf []byte) []byte { return uppercase.Append(buf[:0], req) }

func startServer(t testing.TB, addr string, answer answerFunc, track bool) *server {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		if strings.HasPrefix(addr, "[") {
			t.Skipf("IPv6 loopback not available: %v", err)
		}
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	s := &server{conn: c, done: make(chan struct{})}
	if track {
		s.seen = map[string]bool{}
	}
	go func() {
		defer close(s.done)
		req := make([]byte, 1<<16)
		buf := make([]byte, 0, uppercase.MaxExpansion<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(req)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			if s.seen != nil {
				k := from.String() + " " + string(req[:n])
				if s.seen[k] {
					s.dups++
				}
				s.seen[k] = true
			}
			s.requests++
			if reply := answer(s.requests, req[:n], buf); reply != nil {
				c.WriteToUDPAddrPort(reply, from)
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// stop closes the server and waits for its goroutine.
func (s *server) stop() {
	s.conn.Close()
	<-s.done
}

func config(s *server) Config {
	return Config{Server: s.addr(), Duration: 20 * time.Second, Flows: 2, Window: 4, Size: 64}
}

// runOK runs cfg with a deadline well beyond what any test needs.
func runOK(t *testing.T, cfg Config) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run took more than 30s")
	}
	if res.Sent != res.Received+res.Lost {
		t.Errorf("Sent %d, want Received %d + Lost %d", res.Sent, res.Received, res.Lost)
	}
	return res
}

func TestRunCount(t *testing.T) {
	for _, tc := range []struct {
		name, addr, payload string
		size                int
		plain               bool // no batching beyond sendmmsg
	}{
		{"ascii", "127.0.0.1:0", ASCII, 64, false},
		{"utf8", "127.0.0.1:0", UTF8, 64, false},
		{"ipv6", "[::1]:0", ASCII, 64, false},
		{"plain", "127.0.0.1:0", UTF8, 64, true},
		{"large", "127.0.0.1:0", UTF8, 20000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.plain {
				defer noSegmentation()()
			}
			s := startServer(t, tc.addr, upper, true)
			cfg := config(s)
			cfg.Count = 1000
			cfg.Payload = tc.payload
			cfg.Size = tc.size
			res := runOK(t, cfg)
			s.stop()
			if res.Sent != 1000 || res.Received != 1000 || res.Lost != 0 || res.Mismatched != 0 || res.Unexpected != 0 {
				t.Errorf("got %+v, want 1000 sent and received, none lost, mismatched or unexpected", res)
			}
			if s.requests != 1000 || s.dups != 0 {
				t.Errorf("server got %d requests, %d of them repeated, want 1000 distinct", s.requests, s.dups)
			}
			if !(0 < res.P50 && res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max) {
				t.Errorf("percentiles p50 %v p99 %v p99.9 %v max %v: want 0 < p50 <= p99 <= p99.9 <= max",
					res.P50, res.P99, res.P999, res.Max)
			}
			if res.Rate <= 0 || res.Elapsed <= 0 {
				t.Errorf("Rate %v, Elapsed %v: want both positive", res.Rate, res.Elapsed)
			}
		})
	}
}

// TestRunCountSmallerThanWindow sends exactly Count even when the flows
// could have more in flight.
func TestRunCountSmallerThanWindow(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", upper, false)
	cfg := config(s)
	cfg.Flows, cfg.Window, cfg.Count = 4, 64, 10
	if res := runOK(t, cfg); res.Sent != 10 || res.Received != 10 {
		t.Errorf("got %d sent, %d received, want 10 and 10", res.Sent, res.Received)
	}
}

func TestRunMismatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer answerFunc
	}{
		{"echo", func(_ int, req, buf []byte) []byte { return append(buf[:0], req...) }},
		{"last byte wrong", func(i int, req, buf []byte) []byte {
			b := uppercase.Append(buf[:0], req)
			if i%2 == 0 {
				b[len(b)-1]++
			}
			return b
		}},
		{"longer", func(i int, req, buf []byte) []byte { return append(uppercase.Append(buf[:0], req), '!') }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, "127.0.0.1:0", tc.answer, false)
			cfg := config(s)
			cfg.Count = 200
			res := runOK(t, cfg)
			if res.Mismatched == 0 || res.Received != 200 || res.Lost != 0 {
				t.Errorf("got %+v, want 200 received, some mismatched, none lost", res)
			}
		})
	}
}

// TestRunGarbage: replies that carry no sequence number of the run answer
// nothing; their requests are lost.
func TestRunGarbage(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", func(_ int, _, buf []byte) []byte { return append(buf[:0], "NOPE"...) }, false)
	cfg := config(s)
	cfg.Count, cfg.Timeout = 20, 50*time.Millisecond
	res := runOK(t, cfg)
	if res.Received != 0 || res.Lost != 20 || res.Unexpected != 20 {
		t.Errorf("got %+v, want 20 lost and 20 unexpected", res)
	}
}

func TestRunDrops(t *testing.T) {
	drop2nd := func(i int, req, buf []byte) []byte {
		if i%2 == 0 {
			return nil
		}
		return upper(i, req, buf)
	}
	s := startServer(t, "127.0.0.1:0", drop2nd, false)
	cfg := config(s)
	cfg.Count, cfg.Timeout = 100, 100*time.Millisecond
	start := time.Now()
	res := runOK(t, cfg)
	// 50 losses at 100ms, 8 in flight: about 0.7s.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run took %v, want about 0.7s", took)
	}
	if res.Sent != 100 || res.Lost < 40 || res.Received < 40 || res.Mismatched != 0 {
		t.Errorf("got %+v, want 100 sent, about half lost", res)
	}
	if res.Max >= cfg.Timeout+100*time.Millisecond {
		t.Errorf("Max %v, want less than the timeout %v", res.Max, cfg.Timeout)
	}
}

func TestRunDuration(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", upper, false)
	cfg := config(s)
	cfg.Duration = 1200 * time.Millisecond
	var mu sync.Mutex
	var snaps []Snapshot
	cfg.Progress = func(s Snapshot) {
		mu.Lock()
		snaps = append(snaps, s)
		mu.Unlock()
	}
	start := time.Now()
	res := runOK(t, cfg)
	took := time.Since(start)
	if took < cfg.Duration || took > cfg.Duration+cfg.Timeout+time.Second {
		t.Errorf("run took %v, want %v to %v", took, cfg.Duration, cfg.Duration+cfg.Timeout+time.Second)
	}
	if res.Sent == 0 || res.Received == 0 {
		t.Errorf("got %+v, want datagrams sent and received", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(snaps) < 1 || len(snaps) > 3 {
		t.Fatalf("Progress called %d times in %v, want 1 to 3", len(snaps), cfg.Duration)
	}
	for i, s := range snaps {
		if s.Sent == 0 || s.Sent > res.Sent || s.Rate <= 0 || (i > 0 && s.Sent < snaps[i-1].Sent) {
			t.Errorf("snapshot %d %+v: want progress up to the result %+v", i, s, res)
		}
	}
}

func TestRunCancel(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", upper, false)
	cfg := config(s)
	cfg.Duration = MaxDuration
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v, want nil when cancelled", err)
	}
	if took := time.Since(start); took > 300*time.Millisecond+cfg.Timeout+time.Second {
		t.Errorf("Run returned %v after it was cancelled at 300ms", took)
	}
	if res.Sent == 0 || res.Sent != res.Received+res.Lost {
		t.Errorf("got %+v, want datagrams sent, and each received or lost", res)
	}
}

// TestRunNothingListens: the ICMP errors are counted and every datagram is
// lost, quickly.
func TestRunNothingListens(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	res := runOK(t, Config{Server: addr, Count: 20, Flows: 2, Window: 4, Size: MinSize, Timeout: 50 * time.Millisecond})
	if res.Sent != 20 || res.Lost != 20 || res.Refused == 0 {
		t.Errorf("got %+v, want 20 sent, 20 lost, some refused", res)
	}
}

func TestValidate(t *testing.T) {
	good := Config{Server: netip.MustParseAddrPort("127.0.0.1:12000"), Duration: time.Second, Flows: 1, Window: 1, Size: MinSize}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v, want nil", good, err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no server", func(c *Config) { c.Server = netip.AddrPort{} }, "server"},
		{"port 0", func(c *Config) { c.Server = netip.MustParseAddrPort("127.0.0.1:0") }, "server"},
		{"unspecified", func(c *Config) { c.Server = netip.MustParseAddrPort("0.0.0.0:1") }, "server"},
		{"no bound", func(c *Config) { c.Duration = 0 }, "duration 0 and count 0"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "duration"},
		{"negative duration with count", func(c *Config) { c.Duration, c.Count = -time.Second, 1 }, "duration"},
		{"long duration", func(c *Config) { c.Duration = MaxDuration + 1 }, "duration"},
		{"no flows", func(c *Config) { c.Flows = 0 }, "flows 0"},
		{"many flows", func(c *Config) { c.Flows = MaxFlows + 1 }, "flows"},
		{"no window", func(c *Config) { c.Window = 0 }, "window 0"},
		{"big window", func(c *Config) { c.Window = MaxWindow + 1 }, "window"},
		{"size 0", func(c *Config) { c.Size = 0 }, "size 0"},
		{"size below the sequence number", func(c *Config) { c.Size = MinSize - 1 }, "sequence number"},
		{"size above a datagram", func(c *Config) { c.Size = MaxSize + 1 }, "size"},
		{"payload", func(c *Config) { c.Payload = "latin1" }, "payload"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "timeout"},
		{"long timeout", func(c *Config) { c.Timeout = MaxTimeout + 1 }, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, rerr := Run(context.Background(), cfg); rerr == nil || rerr.Error() != err.Error() {
				t.Errorf("Run() = %v, want Validate's error %v", rerr, err)
			}
		})
	}
	// A Count with no Duration is bounded by MaxDuration.
	c := good
	c.Duration, c.Count = 0, 1
	if err := c.Validate(); err != nil {
		t.Errorf("Validate(count 1, no duration) = %v, want nil", err)
	}
}

// TestPayload checks the requests and that matches accepts exactly
// uppercase.Append of each request.
func TestPayload(t *testing.T) {
	sizes := []int{MinSize, MinSize + 1, 13, 14, 15, 16, 17, 20, 31, 32, 33, 63, 64, 65, 100, 1400, 9000, MaxSize}
	for _, kind := range []string{ASCII, UTF8} {
		for _, size := range sizes {
			p, err := newPayload(kind, size)
			if err != nil {
				t.Fatalf("newPayload(%s, %d): %v", kind, size, err)
			}
			req := bytes.Clone(p.request)
			if len(req) != size || !utf8.Valid(req) {
				t.Errorf("%s %d: request %q: want %d bytes of valid UTF-8", kind, size, req, size)
			}
			if kind == UTF8 && size >= 64 && utf8.RuneCount(req) == len(req) {
				t.Errorf("%s %d: request %q is all ASCII", kind, size, req)
			}
			for _, seq := range []uint64{0, 1, 15, 16, 1<<48 - 1, rand.Uint64N(1 << 48)} {
				putSeq(req, seq)
				if got, ok := seqOf(req); !ok || got != seq {
					t.Errorf("seqOf(request %d) = %d, %v", seq, got, ok)
				}
				reply := uppercase.Append(nil, req)
				if !p.matches(reply, seq) {
					t.Errorf("%s %d: matches(uppercase %q, %d) = false, want true", kind, size, reply, seq)
				}
				if got, ok := seqOf(reply); !ok || got != seq {
					t.Errorf("seqOf(reply %d) = %d, %v", seq, got, ok)
				}
				if p.matches(req, seq) || p.matches(reply, seq+1) || p.matches(reply[:len(reply)-1], seq) {
					t.Errorf("%s %d: matches accepts a wrong reply for %d", kind, size, seq)
				}
				if bytes.Equal(reply[:SeqLen], req[:SeqLen]) {
					t.Errorf("%s %d: the sequence number %q does not change in the reply", kind, size, req[:SeqLen])
				}
			}
		}
	}
}

func TestHistogram(t *testing.T) {
	for v := int64(0); v < 1<<37; v = v*21/20 + 1 {
		got := mid(bucketOf(v))
		if v >= 1<<36 {
			continue // beyond the range: clamped
		}
		if diff := float64(got - v); diff > float64(v)/128+0.5 || -diff > float64(v)/128+0.5 {
			t.Fatalf("mid(bucketOf(%d)) = %d, more than 1/128 away", v, got)
		}
	}
	if got := bucketOf(1 << 40); got != nBuckets-1 {
		t.Errorf("bucketOf(1<<40) = %d, want the last bucket %d", got, nBuckets-1)
	}
	// 1µs to 100ms, uniformly: the quantiles within 1%.
	var h histogram
	for i := int64(1); i <= 100000; i++ {
		h.record(i * 1000)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 50e6}, {0.99, 99e6}, {0.999, 99.9e6}, {1, 100e6}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d > 0.01 || d < -0.01 {
			t.Errorf("quantile(%v) = %d, want %d within 1%%", tc.q, got, tc.want)
		}
	}
	if h.max != 100e6 || h.quantile(1) != h.max {
		t.Errorf("max %d, quantile(1) %d, want 100e6", h.max, h.quantile(1))
	}
	var empty histogram
	if got := empty.quantile(0.5); got != 0 {
		t.Errorf("empty quantile = %d, want 0", got)
	}
}

// TestAllocs proves the per-datagram path allocates nothing: a run ten
// times longer costs no more allocations, beyond noise.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := startServer(t, "127.0.0.1:0", upper, false)
	cfg := config(s)
	mallocs := func(count uint64) uint64 {
		cfg.Count = count
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		runOK(t, cfg)
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	mallocs(100) // warm up
	short, long := mallocs(2000), mallocs(20000)
	t.Logf("allocations: %d for 2000 datagrams, %d for 20000", short, long)
	if per := float64(int64(long)-int64(short)) / 18000; per > 0.01 {
		t.Errorf("%d allocations for 2000 datagrams, %d for 20000: %.3f per datagram, want 0", short, long, per)
	}
}

// BenchmarkRun measures the generator against the in-test server (one
// goroutine, so the server is the bottleneck): ns/op is per datagram.
func BenchmarkRun(b *testing.B) {
	for _, payload := range []string{ASCII, UTF8} {
		b.Run(payload, func(b *testing.B) {
			s := startServer(b, "127.0.0.1:0", upper, false)
			cfg := Config{Server: s.addr(), Count: uint64(b.N), Flows: 2, Window: 16, Size: 64, Payload: payload}
			b.ReportAllocs()
			b.ResetTimer()
			res, err := Run(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Rate, "replies/s")
			b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
		})
	}
}
