// Package ratelimit limits how much a listener answers each source network,
// the way DNS response rate limiting does: one token bucket per source
// prefix (/24 for IPv4, /56 for IPv6), in datagrams and in bytes, in a
// table of bounded size that evicts when full.
//
// A Limiter is not safe for concurrent use; Shared spreads source networks
// over independently locked Limiters, so the workers of one listener share
// one limit per network with little contention. Both are pure: the caller
// passes the time, and nothing here does I/O. ratelimit imports nothing
// from the module.
package ratelimit

import (
	"encoding/binary"
	"net/netip"
	"sync"
)

// Prefix lengths that make one source network.
const (
	IPv4Bits = 24
	IPv6Bits = 56
)

// DefaultTableSize is how many source networks a Limiter tracks at most.
const DefaultTableSize = 65536

// Config sets the limits per source network. A zero rate means that
// dimension is not limited; a zero Config limits nothing.
type Config struct {
	PerSecond      float64 // datagrams answered per second
	Burst          int     // datagrams answered at once; 0 means max(1, PerSecond)
	BytesPerSecond float64 // request bytes answered per second
	BytesBurst     int     // 0 means max(65535, BytesPerSecond)
	TableSize      int     // 0 means DefaultTableSize
}

// Enabled reports whether c limits anything.
func (c Config) Enabled() bool { return c.PerSecond > 0 || c.BytesPerSecond > 0 }

type key struct{ hi, lo uint64 }

type bucket struct {
	last    int64 // nanoseconds of the last refill
	packets float64
	bytes   float64
}

// Limiter holds the buckets.
type Limiter struct {
	cfg                 Config
	burst, bytesBurst   float64
	perNano, bytesPerNs float64
	table               map[key]*bucket
	free                []*bucket // buckets of evicted keys, reused
	size                int
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	l := &Limiter{cfg: cfg, size: cfg.TableSize}
	if l.size <= 0 {
		l.size = DefaultTableSize
	}
	l.burst = float64(cfg.Burst)
	if l.burst <= 0 {
		l.burst = max(1, cfg.PerSecond)
	}
	l.bytesBurst = float64(cfg.BytesBurst)
	if l.bytesBurst <= 0 {
		l.bytesBurst = max(65535, cfg.BytesPerSecond)
	}
	l.perNano = cfg.PerSecond / 1e9
	l.bytesPerNs = cfg.BytesPerSecond / 1e9
	l.table = make(map[key]*bucket, min(l.size, 1024))
	return l
}

// Allow reports whether a datagram of n bytes from src may be answered at
// time now (nanoseconds, monotonic), and takes its tokens if so.
func (l *Limiter) Allow(src netip.Addr, n int, now int64) bool {
	k := prefixKey(src)
	b := l.table[k]
	if b == nil {
		if len(l.table) >= l.size {
			l.evict()
		}
		if n := len(l.free); n > 0 {
			b = l.free[n-1]
			l.free = l.free[:n-1]
		} else {
			b = new(bucket)
		}
		*b = bucket{last: now, packets: l.burst, bytes: l.bytesBurst}
		l.table[k] = b
	} else if dt := now - b.last; dt > 0 {
		b.packets = min(l.burst, b.packets+float64(dt)*l.perNano)
		b.bytes = min(l.bytesBurst, b.bytes+float64(dt)*l.bytesPerNs)
		b.last = now
	}
	if l.cfg.PerSecond > 0 && b.packets < 1 {
		return false
	}
	if l.cfg.BytesPerSecond > 0 && b.bytes < float64(n) {
		return false
	}
	b.packets--
	b.bytes -= float64(n)
	return true
}

// Len is how many source networks are tracked.
func (l *Limiter) Len() int { return len(l.table) }

// evict drops one entry; Go's randomised map order makes it a random one,
// which an attacker spraying sources cannot steer.
func (l *Limiter) evict() {
	for k, b := range l.table {
		delete(l.table, k)
		l.free = append(l.free, b)
		return
	}
}

// shards is how many independently locked Limiters a Shared has.
const shards = 16

// Shared is a Limiter safe for concurrent use: each source network belongs
// to one shard, a Limiter behind its own lock.
type Shared struct {
	shard [shards]struct {
		mu sync.Mutex
		l  *Limiter
		_  [48]byte // keep shards' locks off one cache line
	}
}

// NewShared returns a Shared for cfg; cfg.TableSize is the total.
func NewShared(cfg Config) *Shared {
	per := cfg
	if per.TableSize <= 0 {
		per.TableSize = DefaultTableSize
	}
	per.TableSize = max(1, per.TableSize/shards)
	s := &Shared{}
	for i := range s.shard {
		s.shard[i].l = New(per)
	}
	return s
}

// Allow is Limiter.Allow under the lock of src's shard.
func (s *Shared) Allow(src netip.Addr, n int, now int64) bool {
	k := prefixKey(src)
	h := (k.hi ^ k.lo) * 0x9e3779b97f4a7c15 // spread prefixes over shards
	sh := &s.shard[h>>60]
	sh.mu.Lock()
	ok := sh.l.Allow(src, n, now)
	sh.mu.Unlock()
	return ok
}

func prefixKey(a netip.Addr) key {
	a = a.Unmap()
	if a.Is4() {
		v4 := a.As4()
		return key{lo: uint64(binary.BigEndian.Uint32(v4[:]) &^ (1<<(32-IPv4Bits) - 1))}
	}
	// IPv4 keys have lo < 1<<32, so this bit keeps the families apart.
	v6 := a.As16()
	return key{hi: binary.BigEndian.Uint64(v6[:8]) &^ (1<<(64-IPv6Bits) - 1), lo: 1 << 63}
}
