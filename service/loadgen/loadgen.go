// Package loadgen is a closed-loop load generator for an uppercase UDP
// server such as udpd: it keeps a fixed number of datagrams in flight,
// checks that every reply is the uppercase of its request, and measures
// throughput and round-trip times.
//
// Each flow is one UDP socket connected to the server. It keeps
// Config.Window datagrams in flight; every reply, and every datagram that
// got no reply within Config.Timeout (counted lost), is replaced by the
// next datagram. A run is bounded: it stops sending at Config.Duration,
// after Config.Count datagrams, or when its context is cancelled, whichever
// comes first, and then waits at most Config.Timeout for the replies still
// in flight. Duration is at most MaxDuration and Timeout at most MaxTimeout,
// so no configuration runs longer than MaxDuration+MaxTimeout.
//
// Every request starts with a sequence number written in lower-case letters
// (SeqLen bytes), so its uppercase reply differs from it in every one of
// those bytes and proves the server did its work. The rest of the datagram
// is lower-case padding: ASCII text, or mixed German, Greek and Cyrillic
// text cut at a rune boundary.
//
// On Linux, a flow sends and receives in batches (sendmmsg/recvmmsg, and
// UDP segmentation offload to a loopback server) into buffers allocated
// before the first datagram, so the per-datagram path allocates nothing;
// round-trip times go into a fixed-size histogram.
//
// loadgen speaks only UDP: it imports no gRPC, no protobuf and nothing of
// the daemon except the uppercase mapping it checks replies against. It
// sends to whatever address it is given; refusing non-loopback targets is
// the caller's policy (udpctl bench does).
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of a Config.
const (
	MaxFlows    = 1024
	MaxWindow   = 1024
	MaxSize     = 65507 // the largest UDP payload over IPv4
	MaxDuration = time.Hour
	MaxTimeout  = time.Minute

	// MinSize is the smallest datagram: it holds the sequence number.
	MinSize = SeqLen

	// DefaultTimeout is how long a datagram waits for its reply when
	// Config.Timeout is zero.
	DefaultTimeout = time.Second

	// progressEvery is how often Config.Progress is called.
	progressEvery = 500 * time.Millisecond
)

// Payloads are the kinds of padding a request can carry.
const (
	ASCII = "ascii" // lower-case English text
	UTF8  = "utf8"  // lower-case German, Greek and Cyrillic text
)

// Config describes a run. The zero values of Payload and Timeout mean
// ASCII and DefaultTimeout; the other fields must be set.
type Config struct {
	// Server is the address to load.
	Server netip.AddrPort
	// Duration bounds the time spent sending (at most MaxDuration). Zero
	// means MaxDuration, which needs a Count.
	Duration time.Duration
	// Count bounds the number of datagrams sent; zero means no bound but
	// Duration.
	Count uint64
	// Flows is the number of sockets (1 to MaxFlows), Window the number of
	// datagrams each keeps in flight (1 to MaxWindow).
	Flows, Window int
	// Size is the length of every request in bytes (MinSize to MaxSize).
	Size int
	// Payload is ASCII or UTF8.
	Payload string
	// NoSegmentation sends one datagram per message even to a loopback
	// server, like ordinary clients, instead of UDP segmentation offload.
	NoSegmentation bool
	// Timeout is how long a datagram waits for its reply before it counts
	// as lost and is replaced (at most MaxTimeout). A loss is noticed
	// within Timeout/8 (at most 50ms) after that.
	Timeout time.Duration
	// Progress, if not nil, is called about every 500ms while the run
	// sends, from a goroutine of its own (never concurrently with itself).
	Progress func(Snapshot)
}

// Snapshot is the progress of a run so far.
type Snapshot struct {
	Elapsed                          time.Duration
	Sent, Received, Lost, Mismatched uint64
	Rate                             float64 // replies per second since the previous Snapshot
}

// Result is what a run measured. At its end every datagram sent was
// either answered or lost: Sent == Received + Lost.
type Result struct {
	// Sent counts the requests sent.
	Sent uint64
	// Received counts the replies that answered a request in flight,
	// correct or not.
	Received uint64
	// Lost counts the requests that got no reply within Config.Timeout.
	Lost uint64
	// Mismatched counts the replies (of Received) that were not exactly
	// the uppercase of their request.
	Mismatched uint64
	// Unexpected counts the datagrams from the server that answered no
	// request in flight: late replies to requests already counted lost,
	// duplicates, and datagrams that carry none of the run's sequence
	// numbers.
	Unexpected uint64
	// Refused counts the ICMP port-unreachable errors the sockets
	// reported: nothing listened at Server.
	Refused uint64
	// Elapsed is the length of the run, from the first request sent to
	// the last reply or loss.
	Elapsed time.Duration
	// Rate is Received per second of Elapsed.
	Rate float64
	// P50, P99 and P999 are percentiles of the round-trip time of the
	// replies (within 1%); Max is the longest, exactly.
	P50, P99, P999, Max time.Duration
}

// Validate reports whether Run would accept c: nil, or one error naming
// every field out of range.
func (c Config) Validate() error {
	c.setDefaults()
	return c.validate()
}

func (c *Config) setDefaults() {
	if c.Payload == "" {
		c.Payload = ASCII
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Duration == 0 && c.Count > 0 {
		c.Duration = MaxDuration
	}
}

func (c *Config) validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !c.Server.IsValid() || c.Server.Port() == 0 || c.Server.Addr().IsUnspecified() {
		bad("server %q: want an IP address and a port", c.Server)
	}
	switch {
	case c.Duration == 0:
		bad("duration 0 and count 0: the run needs a bound")
	case c.Duration < 0 || c.Duration > MaxDuration:
		bad("duration %v: want 1ns to %v", c.Duration, MaxDuration)
	}
	if c.Flows < 1 || c.Flows > MaxFlows {
		bad("flows %d: want 1 to %d", c.Flows, MaxFlows)
	}
	if c.Window < 1 || c.Window > MaxWindow {
		bad("window %d: want 1 to %d", c.Window, MaxWindow)
	}
	if c.Size < MinSize || c.Size > MaxSize {
		bad("size %d: want %d to %d (a request holds a %d-byte sequence number)", c.Size, MinSize, MaxSize, SeqLen)
	}
	if c.Payload != ASCII && c.Payload != UTF8 {
		bad("payload %q: want %s or %s", c.Payload, ASCII, UTF8)
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		bad("timeout %v: want 1ns to %v", c.Timeout, MaxTimeout)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// run is the state the flows of one run share.
type run struct {
	cfg     Config
	start   time.Time
	timeout int64 // ns
	tick    int64 // ns between looks for lost datagrams
	stop    atomic.Bool
	issued  atomic.Uint64 // datagrams granted to flows, with Count
	payload *payload
}

// now is the time since the run started, on the monotonic clock.
func (r *run) now() int64 { return int64(time.Since(r.start)) }

// take grants up to n more datagrams to send under Count.
func (r *run) take(n int) int {
	if r.cfg.Count == 0 {
		return n
	}
	v := r.issued.Add(uint64(n))
	if v <= r.cfg.Count {
		return n
	}
	over := v - r.cfg.Count
	if over >= uint64(n) {
		return 0
	}
	return n - int(over)
}

// Run loads cfg.Server as cfg describes and returns what it measured.
// Cancelling ctx ends the run early, like reaching Duration: Run still
// waits for the replies in flight and returns the Result with a nil error.
// An error means the run could not start or a socket failed.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	cfg.Server = netip.AddrPortFrom(cfg.Server.Addr().Unmap(), cfg.Server.Port())
	p, err := newPayload(cfg.Payload, cfg.Size)
	if err != nil {
		return Result{}, err
	}
	r := &run{
		cfg:     cfg,
		timeout: int64(cfg.Timeout),
		tick:    int64(min(max(cfg.Timeout/8, time.Millisecond), 50*time.Millisecond)),
		payload: p,
	}
	flows := make([]*flow, 0, cfg.Flows)
	defer func() {
		for _, f := range flows {
			f.conn.Close()
		}
	}()
	for range cfg.Flows {
		f, err := newFlow(r)
		if err != nil {
			return Result{}, err
		}
		flows = append(flows, f)
	}

	r.start = time.Now()
	errs := make([]error, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Go(func() {
			if errs[i] = f.loop(); errs[i] != nil {
				r.stop.Store(true)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	r.watch(ctx, done, flows)
	elapsed := time.Since(r.start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	return result(flows, elapsed), nil
}

// watch stops the run at Duration or when ctx is done, calls Progress,
// and returns when every flow has finished.
func (r *run) watch(ctx context.Context, done <-chan struct{}, flows []*flow) {
	end := time.NewTimer(r.cfg.Duration)
	defer end.Stop()
	var ticks <-chan time.Time
	if r.cfg.Progress != nil {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		ticks = t.C
	}
	cancelled := ctx.Done()
	var last Snapshot
	for {
		select {
		case <-done:
			return
		case <-cancelled:
			r.stop.Store(true)
			cancelled = nil
		case <-end.C:
			r.stop.Store(true)
		case <-ticks:
			s := snapshot(flows, time.Since(r.start))
			if secs := (s.Elapsed - last.Elapsed).Seconds(); secs > 0 {
				s.Rate = float64(s.Received-last.Received) / secs
			}
			last = s
			if !r.stop.Load() {
				r.cfg.Progress(s)
			}
		}
	}
}

func snapshot(flows []*flow, elapsed time.Duration) Snapshot {
	s := Snapshot{Elapsed: elapsed}
	for _, f := range flows {
		s.Sent += f.c.sent.Load()
		s.Received += f.c.received.Load()
		s.Lost += f.c.lost.Load()
		s.Mismatched += f.c.mismatched.Load()
	}
	return s
}

func result(flows []*flow, elapsed time.Duration) Result {
	res := Result{Elapsed: elapsed}
	h := new(histogram)
	for _, f := range flows {
		res.Sent += f.c.sent.Load()
		res.Received += f.c.received.Load()
		res.Lost += f.c.lost.Load()
		res.Mismatched += f.c.mismatched.Load()
		res.Unexpected += f.c.unexpected.Load()
		res.Refused += f.c.refused.Load()
		h.merge(&f.hist)
	}
	if secs := elapsed.Seconds(); secs > 0 {
		res.Rate = float64(res.Received) / secs
	}
	res.Max = time.Duration(h.max)
	res.P50 = time.Duration(h.quantile(0.50))
	res.P99 = time.Duration(h.quantile(0.99))
	res.P999 = time.Duration(h.quantile(0.999))
	return res
}

// dial opens a flow's socket, connected to the server so the kernel
// drops datagrams from anyone else and reports ICMP errors.
func dial(r *run) (*net.UDPConn, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.cfg.Server))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", r.cfg.Server, err)
	}
	// Room for a full window of replies; the kernel caps it at rmem_max.
	if need := r.cfg.Window * (r.payload.replyLen() + 1024); need > 256<<10 {
		c.SetReadBuffer(min(need, 16<<20))
	}
	return c, nil
}
