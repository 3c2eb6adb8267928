package listener

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udpd/udpd/service/ratelimit"
	"github.com/udpd/udpd/service/uppercase"
)

// Largest UDP payloads: 65,535 minus the UDP header and, over IPv4, the
// minimal IPv4 header. A reply longer than this cannot be sent.
const (
	MaxPayloadIPv4 = 65507
	MaxPayloadIPv6 = 65527
)

// DefaultBatch is how many datagrams one system call reads or writes.
const DefaultBatch = 32

// ErrNotUnicast is returned (wrapped) by Listen for a multicast or
// broadcast address: a listener serves one unicast address (or a wildcard).
var ErrNotUnicast = errors.New("not a unicast address")

// unicast reports whether ip is neither multicast nor the broadcast
// address.
func unicast(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsMulticast() && ip != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// Config says what to bind.
type Config struct {
	// Addr is the address to bind; port 0 picks a free port.
	Addr netip.AddrPort
	// Workers is the number of sockets (and goroutines) sharing Addr;
	// 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Batch is the most datagrams read per system call; 0 means DefaultBatch.
	Batch int
	// Policy says which datagrams not to answer.
	Policy Policy
}

// Listener is a bound group of sockets answering datagrams on one address.
type Listener struct {
	addr       netip.AddrPort
	workers    []*worker
	start      time.Time
	maxPayload int
	rules      atomic.Pointer[rules] // the policy in force; SetPolicy replaces it

	draining   atomic.Bool
	drainUntil atomic.Int64 // unix nanoseconds; valid once draining is set

	serveOnce    sync.Once
	shutdownOnce sync.Once
	done         chan struct{} // closed when every worker has returned and the sockets are closed
	closed       atomic.Bool
	shared       atomic.Bool // the sockets were passed on (Sockets): never shut them down
	closeOnce    sync.Once
	closeErr     error // valid once done is closed
}

// Listen binds cfg.Addr with cfg.Workers sockets. It returns an error
// wrapping the system call's (syscall.EADDRINUSE, syscall.EACCES, …) when
// the address cannot be bound, also when another socket, even one of this
// process's, holds it. Serve starts answering.
func Listen(ctx context.Context, cfg Config) (*Listener, error) {
	if !cfg.Addr.IsValid() {
		return nil, fmt.Errorf("listen: invalid address %v", cfg.Addr)
	}
	if !unicast(cfg.Addr.Addr()) {
		return nil, fmt.Errorf("listen %v: %w", cfg.Addr, ErrNotUnicast)
	}
	n := cfg.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	batch := cfg.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	uppercase.Prepare() // no table building on the datagram path
	socks, bound, err := bindGroup(ctx, cfg.Addr, n)
	if err != nil {
		return nil, err
	}
	return build(socks, true, bound, batch, cfg.Policy)
}

// build makes a Listener of bound sockets, one per worker. Owned sockets
// are this process's alone (see worker.owned). On an error build closes
// the sockets.
func build(socks []sock, owned bool, bound netip.AddrPort, batch int, policy Policy) (*Listener, error) {
	l := &Listener{
		addr:       bound,
		start:      time.Now(),
		maxPayload: MaxPayloadIPv4,
		done:       make(chan struct{}),
	}
	if bound.Addr().Is6() && !bound.Addr().Is4In6() {
		l.maxPayload = MaxPayloadIPv6
	}
	l.SetPolicy(policy)
	for _, s := range socks {
		w, err := newWorker(l, s, owned, batch)
		if err != nil {
			for _, s := range socks {
				closeSock(s)
			}
			return nil, fmt.Errorf("listen %v: %w", bound, err)
		}
		l.workers = append(l.workers, w)
	}
	return l, nil
}

// rules are a policy and the rate limiter made from it, replaced whole so
// that a worker reads one consistent pair per batch.
type rules struct {
	Policy
	limiter *ratelimit.Shared // one limit per source network, whichever worker reads it; nil: none
}

// SetPolicy replaces the listener's policy while it serves, keeping its
// sockets and counters; the next batch each worker reads follows it. A
// changed rate limit starts with fresh token buckets; an unchanged one
// keeps its buckets.
func (l *Listener) SetPolicy(p Policy) {
	r := &rules{Policy: p}
	if old := l.rules.Load(); old != nil && old.RateLimit == p.RateLimit {
		r.limiter = old.limiter
	} else if p.RateLimit.Enabled() {
		r.limiter = ratelimit.NewShared(p.RateLimit)
	}
	l.rules.Store(r)
}

// Policy returns the policy in force.
func (l *Listener) Policy() Policy { return l.rules.Load().Policy }

// Addr is the bound address (port 0 resolved).
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// Workers is the number of sockets serving the address.
func (l *Listener) Workers() int { return len(l.workers) }

// Serve answers datagrams until the listener is shut down or closed, and
// then returns nil. It returns an error only if called twice.
func (l *Listener) Serve() error {
	ran := false
	l.serveOnce.Do(func() { ran = true; l.run() })
	if !ran {
		if l.draining.Load() || l.closed.Load() {
			<-l.done // Shutdown or Close took over the workers
			return nil
		}
		return errors.New("listener: Serve called twice")
	}
	return nil
}

// run runs the workers until they all return, then closes the sockets.
func (l *Listener) run() {
	var wg sync.WaitGroup
	for _, w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.serve()
		}()
	}
	wg.Wait()
	l.closeSockets()
}

// closeSockets closes every worker's socket; the workers have returned.
func (l *Listener) closeSockets() {
	var errs []error
	for _, w := range l.workers {
		if err := w.closeFD(); err != nil {
			errs = append(errs, err)
		}
	}
	l.closeErr = errors.Join(errs...)
	close(l.done)
}

// Shutdown stops the listener without losing what its sockets already
// hold: the workers stop waiting for new datagrams, answer what their
// sockets hold until a read finds the queue empty or ctx is done, and then
// the sockets are closed. A listener that was never served is drained all
// the same. Shutdown returns once the workers have returned, so the
// counters are final; the deadline of the first call is the one that
// counts.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.shutdownOnce.Do(func() {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(time.Minute)
		}
		// Workers read the deadline once they see draining set.
		l.drainUntil.Store(deadline.UnixNano())
		l.draining.Store(true)
		for _, w := range l.workers {
			w.wake()
		}
		go l.serveOnce.Do(l.run) // never served: serve now, straight into the drain
	})
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	// Close ends every worker at once, and returns once they have, so the
	// counters are final when Shutdown returns.
	return l.Close()
}

// Close closes the sockets at once, dropping whatever they still hold.
// It returns once the workers have returned and the sockets are closed.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		for _, w := range l.workers {
			w.stop()
		}
		l.serveOnce.Do(l.closeSockets) // never served: nothing else will
	})
	<-l.done
	return l.closeErr
}

// Counters returns the sum of the workers' counters like Stats, without
// a system call: KernelDrops is the count the last Stats read.
func (l *Listener) Counters() Stats {
	s := Stats{Start: l.start}
	for _, w := range l.workers {
		ws := w.c.load()
		ws.KernelDrops = w.kernelDrops.Load()
		s = s.Add(ws)
	}
	return s
}

// Stats returns the sum of the workers' counters.
func (l *Listener) Stats() Stats {
	s := Stats{Start: l.start}
	for _, w := range l.workers {
		ws := w.c.load()
		ws.KernelDrops = w.drops()
		s = s.Add(ws)
	}
	return s
}
