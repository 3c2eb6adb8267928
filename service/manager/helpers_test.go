package manager_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/manager"
)

// ctx returns a context that ends with the test or after 10 s.
func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// newManager returns a Manager whose listeners default to one socket each,
// shut down (and checked) at the end of the test.
func newManager(t testing.TB, opts manager.Options) *manager.Manager {
	t.Helper()
	if opts.Workers == 0 {
		opts.Workers = 1
	}
	m := manager.New(opts)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Shutdown(c); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return m
}

// start starts spec and fails the test if it cannot.
func start(t testing.TB, m *manager.Manager, spec manager.Spec) manager.Listener {
	t.Helper()
	l, err := m.Start(ctx(t), spec, "")
	if err != nil {
		t.Fatalf("Start(%+v): %v", spec, err)
	}
	return l
}

// UDP probes, shared with the other packages' tests.
var (
	echo        = udptest.Echo
	mustEcho    = udptest.MustEcho
	mustNotEcho = udptest.MustNotEcho
)

// mustBindable checks that addr is free by binding it with a plain socket.
func mustBindable(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("bind %v after it was released: %v", addr, err)
	}
	c.Close()
}

// freeAddr returns "host:port" with a port that was free a moment ago.
func freeAddr(t testing.TB, host string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	defer c.Close()
	return net.JoinHostPort(host, strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
}

// hold binds a plain UDP socket (the textbook server) for the rest of the test.
func hold(t testing.TB, host string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// skipWithoutIPv6 skips the test when [::1] cannot be bound.
func skipWithoutIPv6(t testing.TB) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("IPv6 loopback not available: %v", err)
	}
	c.Close()
}

// waitFor polls cond for up to 2 s: counters are added once per batch,
// just after the replies are sent, so a reply may arrive before its count.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// fakeStore is a manager.Store that keeps the last list saved and can be
// told to fail.
type fakeStore struct {
	mu    sync.Mutex
	fail  error
	saves int
	last  []manager.Spec
}

var errDiskFull = errors.New("disk full")

func (s *fakeStore) Save(specs []manager.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.saves++
	s.last = slices.Clone(specs)
	return nil
}

func (s *fakeStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

// state returns the number of successful saves and the last list saved.
func (s *fakeStore) state() (int, []manager.Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves, slices.Clone(s.last)
}

// ids returns the ids of ls in order.
func statsIDs(ls []manager.ListenerStats) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}

func ids(ls []manager.Listener) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}
