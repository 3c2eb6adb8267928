package ratelimit

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const sec = int64(time.Second)

func TestBurstThenRate(t *testing.T) {
	l := New(Config{PerSecond: 10, Burst: 5})
	src := netip.MustParseAddr("192.0.2.7")
	allowed := 0
	for range 20 {
		if l.Allow(src, 100, 0) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("allowed at t=0: got %d, want the burst, 5", allowed)
	}
	// 10/s refills one token every 100 ms.
	if !l.Allow(src, 100, sec/10) {
		t.Errorf("after 100ms: got denied, want allowed")
	}
	if l.Allow(src, 100, sec/10) {
		t.Errorf("second at 100ms: got allowed, want denied")
	}
	// A long pause refills no more than the burst.
	allowed = 0
	for range 20 {
		if l.Allow(src, 100, 100*sec) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("allowed after a long pause: got %d, want 5", allowed)
	}
}

func TestPrefixesShareABucket(t *testing.T) {
	tests := []struct {
		name     string
		a, b     string
		together bool
	}{
		{"same /24", "198.51.100.1", "198.51.100.254", true},
		{"other /24", "198.51.100.1", "198.51.101.1", false},
		{"same /56", "2001:db8:0:1200::1", "2001:db8:0:12ff::2", true},
		{"other /56", "2001:db8:0:1200::1", "2001:db8:0:1300::1", false},
		{"v4-mapped is v4", "::ffff:198.51.100.1", "198.51.100.2", true},
		{"families apart", "0.0.0.1", "::1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := New(Config{PerSecond: 1, Burst: 1})
			if !l.Allow(netip.MustParseAddr(tc.a), 1, 0) {
				t.Fatalf("first datagram from %s denied", tc.a)
			}
			got := !l.Allow(netip.MustParseAddr(tc.b), 1, 0)
			if got != tc.together {
				t.Errorf("%s then %s share a bucket: got %v, want %v", tc.a, tc.b, got, tc.together)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	l := New(Config{BytesPerSecond: 1000, BytesBurst: 1500})
	src := netip.MustParseAddr("203.0.113.9")
	if !l.Allow(src, 1000, 0) {
		t.Fatal("first 1000 bytes denied")
	}
	if l.Allow(src, 1000, 0) {
		t.Error("second 1000 bytes within the 1500-byte burst allowed")
	}
	if !l.Allow(src, 400, 0) {
		t.Error("400 bytes left in the burst denied")
	}
	if !l.Allow(src, 1000, sec) {
		t.Error("1000 bytes after one second at 1000 B/s denied")
	}
}

func TestTableIsBounded(t *testing.T) {
	l := New(Config{PerSecond: 1, TableSize: 100})
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		l.Allow(a, 1, int64(i))
		if l.Len() > 100 {
			t.Fatalf("after %d sources the table holds %d, want at most 100", i+1, l.Len())
		}
	}
}

func TestSharedIsOneLimitPerNetwork(t *testing.T) {
	s := NewShared(Config{PerSecond: 1, Burst: 10})
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				// Four "workers", many sources in one /24.
				if s.Allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(w*50 + i)}), 1, 0) {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if allowed.Load() != 10 {
		t.Errorf("allowed %d datagrams from one /24 across 4 goroutines, want the burst, 10", allowed.Load())
	}
	if (Config{}).Enabled() {
		t.Error("zero Config enabled")
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(Config{PerSecond: 1e9, Burst: 1 << 30})
	src := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow(src, 64, int64(i))
	}
}
