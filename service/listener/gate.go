package listener

import (
	"net/netip"
	"sync/atomic"

	"github.com/udpd/udpd/service/internal/testhook"
	"github.com/udpd/udpd/service/ratelimit"
)

// verdict is what a listener's policy says about one datagram.
type verdict uint8

const (
	answer     verdict = iota
	refuseLoop         // counted in LoopBlocked
	refuseRate         // counted in RateLimited
)

// gate makes a worker's per-datagram policy decisions, the same in every
// worker implementation: loops (the shared LoopGuard and the worker's own
// echo detector), the rate limit and the reply size. Only its worker uses
// it; after the first datagram it allocates nothing.
type gate struct {
	rules      *atomic.Pointer[rules] // the listener's, replaced by SetPolicy
	maxPayload int
	echo       echoGuard

	policy  *Policy           // in force for this batch (see begin)
	limiter *ratelimit.Shared // nil: no rate limit

	loopsOff bool // tests only: no loop guard (testhook.NoLoopGuards)
}

// newGate makes the gate of one of l's workers.
func newGate(l *Listener) gate {
	return gate{rules: &l.rules, maxPayload: l.maxPayload, loopsOff: testhook.NoLoopGuards.Load()}
}

// begin reads the policy in force for the batch about to be handled: a
// SetPolicy applies from the next batch on.
func (g *gate) begin() {
	r := g.rules.Load()
	g.policy, g.limiter = &r.Policy, r.limiter
}

// admit decides whether the request req from src:port, sent to dst (the
// zero Addr if unknown), is answered. now is the listener's monotonic
// clock in nanoseconds. It also returns the peer's key, for sent.
func (g *gate) admit(src netip.Addr, port uint16, dst netip.Addr, req []byte, now int64) (verdict, uint64) {
	if port == 0 {
		return refuseLoop, 0
	}
	var pk uint64
	if !g.loopsOff {
		if g.policy.Loops.Blocks(src, port, dst) {
			return refuseLoop, 0
		}
		pk = g.echo.peer(netip.AddrPortFrom(src, port))
		if g.echo.refuse(pk, req, now) {
			return refuseLoop, pk
		}
	}
	if g.limiter != nil && (g.policy.LimitLoopback || !src.IsLoopback()) && !g.limiter.Allow(src, len(req), now) {
		return refuseRate, pk
	}
	return answer, pk
}

// tooLarge reports whether a reply of n bytes to a request of size bytes
// must not be sent: it exceeds the largest payload or MaxReplyRatio.
func (g *gate) tooLarge(size, n int) bool {
	r := g.policy.MaxReplyRatio
	return n > g.maxPayload || (r > 0 && n > size && float64(n) > r*float64(size))
}

// sent records the reply about to be sent to the peer admit returned,
// for the echo detector.
func (g *gate) sent(peer uint64, reply []byte, now int64) {
	if !g.loopsOff {
		g.echo.sent(peer, reply, now)
	}
}
