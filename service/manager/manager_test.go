package manager_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

func TestStartAnswersDatagrams(t *testing.T) {
	for _, tc := range []struct {
		name, address string
		v6            bool
	}{
		{"ipv4", "127.0.0.1:0", false},
		{"localhost", "localhost:0", false},
		{"ipv6", "[::1]:0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.v6 {
				skipWithoutIPv6(t)
			}
			m := newManager(t, manager.Options{})
			l := start(t, m, manager.Spec{ID: "echo", Address: tc.address})
			if l.ID != "echo" || l.Address != tc.address || l.State != manager.StateRunning || l.Generation != 1 || l.Workers != 1 {
				t.Errorf("Start: got %+v, want id echo, address %s, running, generation 1, 1 worker", l, tc.address)
			}
			if l.BoundAddress.Port() == 0 || l.BoundAddress.Addr().Is6() != tc.v6 {
				t.Errorf("BoundAddress: got %v, want a resolved port on the asked family", l.BoundAddress)
			}
			if l.Created.IsZero() || !l.Bound.Equal(l.Created) {
				t.Errorf("Created, Bound: got %v, %v, want equal and set", l.Created, l.Bound)
			}
			mustEcho(t, l.BoundAddress, "hello, world")
			if got, err := echo(l.BoundAddress, "straße"); err != nil || got != "STRASSE" {
				t.Errorf("reply to %q: got %q, %v, want %q", "straße", got, err, "STRASSE")
			}
		})
	}
}

func TestStartInvalid(t *testing.T) {
	tests := []struct {
		name  string
		spec  manager.Spec
		want  error
		field string
	}{
		{"upper-case id", manager.Spec{ID: "Echo", Address: "127.0.0.1:0"}, manager.ErrInvalidID, "id"},
		{"id starts with a digit", manager.Spec{ID: "1a", Address: "127.0.0.1:0"}, manager.ErrInvalidID, "id"},
		{"id with underscore", manager.Spec{ID: "a_b", Address: "127.0.0.1:0"}, manager.ErrInvalidID, "id"},
		{"id of 64 characters", manager.Spec{ID: "a" + strings.Repeat("b", 63), Address: "127.0.0.1:0"}, manager.ErrInvalidID, "id"},
		{"empty address", manager.Spec{ID: "a"}, manager.ErrInvalidAddress, "address"},
		{"missing port", manager.Spec{ID: "a", Address: "127.0.0.1"}, manager.ErrInvalidAddress, "address"},
		{"port 70000", manager.Spec{ID: "a", Address: "127.0.0.1:70000"}, manager.ErrInvalidAddress, "address"},
		{"negative port", manager.Spec{ID: "a", Address: "127.0.0.1:-1"}, manager.ErrInvalidAddress, "address"},
		{"named port", manager.Spec{ID: "a", Address: "127.0.0.1:domain"}, manager.ErrInvalidAddress, "address"},
		{"bad host", manager.Spec{ID: "a", Address: "foo:12000"}, manager.ErrInvalidAddress, "address"},
		{"empty host", manager.Spec{ID: "a", Address: ":12000"}, manager.ErrInvalidAddress, "address"},
		{"ipv6 without brackets", manager.Spec{ID: "a", Address: "::1:12000"}, manager.ErrInvalidAddress, "address"},
		{"ipv4 multicast", manager.Spec{ID: "a", Address: "224.0.0.1:0"}, manager.ErrInvalidAddress, "address"},
		{"ipv4 multicast, fixed port", manager.Spec{ID: "a", Address: "239.255.255.250:1900"}, manager.ErrInvalidAddress, "address"},
		{"ipv6 multicast", manager.Spec{ID: "a", Address: "[ff02::1]:0"}, manager.ErrInvalidAddress, "address"},
		{"mapped multicast", manager.Spec{ID: "a", Address: "[::ffff:224.0.0.1]:0"}, manager.ErrInvalidAddress, "address"},
		{"limited broadcast", manager.Spec{ID: "a", Address: "255.255.255.255:0"}, manager.ErrInvalidAddress, "address"},
		{"loopback's broadcast", manager.Spec{ID: "a", Address: "127.255.255.255:0"}, manager.ErrInvalidAddress, "address"},
		{"unknown zone", manager.Spec{ID: "a", Address: "[fe80::1%nosuchif]:0"}, manager.ErrInvalidAddress, "address"},
		{"unknown zone index", manager.Spec{ID: "a", Address: "[fe80::1%99999]:0"}, manager.ErrInvalidAddress, "address"},
		{"link-local without zone", manager.Spec{ID: "a", Address: "[fe80::1]:0"}, manager.ErrInvalidAddress, "address"},
		{"zone on a global address", manager.Spec{ID: "a", Address: "[::1%lo]:0"}, manager.ErrInvalidAddress, "address"},
		{"negative workers", manager.Spec{ID: "a", Address: "127.0.0.1:0", Workers: -1}, manager.ErrInvalidArgument, "workers"},
		{"too many workers", manager.Spec{ID: "a", Address: "127.0.0.1:0", Workers: 1025}, manager.ErrInvalidArgument, "workers"},
	}
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := m.Start(ctx(t), tc.spec, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start(%+v): got %v (%+v), want %v", tc.spec, err, l, tc.want)
			}
			var fe *manager.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Start(%+v): got %T, want a *manager.FieldError", tc.spec, err)
			}
			if fe.Field != tc.field || fe.Reason == "" {
				t.Errorf("FieldError: got field %q reason %q, want field %q and a reason", fe.Field, fe.Reason, tc.field)
			}
		})
	}
	if ls, _ := m.List("", 0); len(ls) != 0 {
		t.Errorf("List after failed starts: got %v, want none", ids(ls))
	}
	if saves, _ := store.state(); saves != 0 {
		t.Errorf("Store saves after failed starts: got %d, want 0", saves)
	}
}

func TestStartInvalidRequestID(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	for _, req := range []string{
		strings.Repeat("r", manager.MaxRequestIDLen+1),
		strings.Repeat("r", 4<<20),
		"with space",
		"new\nline",
		"straße",
		"a/b",
		"\x00",
	} {
		l, err := m.Start(ctx(t), manager.Spec{ID: "a", Address: "127.0.0.1:0"}, req)
		var fe *manager.FieldError
		if !errors.Is(err, manager.ErrInvalidArgument) || !errors.As(err, &fe) || fe.Field != "request_id" {
			t.Errorf("Start with request id %.20q (%d bytes): got %+v, %v, want a field error on request_id", req, len(req), l, err)
		}
	}
	if ls, _ := m.List("", 0); len(ls) != 0 {
		t.Errorf("List after refused starts: got %v, want none", ids(ls))
	}
	if saves, _ := store.state(); saves != 0 {
		t.Errorf("Store saves after refused starts: got %d, want 0", saves)
	}
	for _, req := range []string{strings.Repeat("r", manager.MaxRequestIDLen), "7d0f6a52-9c1e-4b7a-8f00-1e2d3c4b5a69", "Job_1.step:2"} {
		if err := manager.ValidateRequestID(req); err != nil {
			t.Errorf("ValidateRequestID(%q): %v, want nil", req, err)
		}
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want netip.AddrPort
	}{
		{"127.0.0.1:12000", netip.MustParseAddrPort("127.0.0.1:12000")},
		{"localhost:53", netip.MustParseAddrPort("127.0.0.1:53")},
		{"[::1]:0", netip.MustParseAddrPort("[::1]:0")},
		{"0.0.0.0:65535", netip.MustParseAddrPort("0.0.0.0:65535")},
		{"[::ffff:10.0.0.1]:7", netip.MustParseAddrPort("10.0.0.1:7")},
		{"[fe80::1%eth0]:9", netip.MustParseAddrPort("[fe80::1%eth0]:9")}, // interfaces are checked at bind
		{"127.255.255.254:1", netip.MustParseAddrPort("127.255.255.254:1")},
		{"169.254.0.1:1", netip.MustParseAddrPort("169.254.0.1:1")}, // IPv4 link-local needs no zone
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := manager.ParseAddress(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseAddress(%q): got %v, %v, want %v, nil", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestStartGeneratesID(t *testing.T) {
	m := newManager(t, manager.Options{})
	addr := freeAddr(t, "127.0.0.1")
	_, port, _ := strings.Cut(addr, ":")

	l := start(t, m, manager.Spec{Address: addr})
	if want := "udp-" + port; l.ID != want {
		t.Errorf("id for %s: got %q, want %q", addr, l.ID, want)
	}
	// Move it away: its id stays, so the next listener on the port gets a
	// suffix.
	if _, err := m.Rebind(ctx(t), l.ID, "127.0.0.1:0", 0); err != nil {
		t.Fatal(err)
	}
	l2 := start(t, m, manager.Spec{Address: addr})
	if want := "udp-" + port + "-2"; l2.ID != want {
		t.Errorf("id for %s with udp-%s taken: got %q, want %q", addr, port, l2.ID, want)
	}
	// Port 0 has no port to name it after: a random suffix.
	l3 := start(t, m, manager.Spec{Address: "127.0.0.1:0"})
	if !regexp.MustCompile(`^udp-[0-9a-f]{6}$`).MatchString(l3.ID) {
		t.Errorf("id for port 0: got %q, want udp- and 6 hex digits", l3.ID)
	}
	for _, l := range []manager.Listener{l2, l3} {
		if err := manager.ValidateID(l.ID); err != nil {
			t.Errorf("generated id %q: %v", l.ID, err)
		}
	}
}

func TestStartIdempotent(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	addr := freeAddr(t, "127.0.0.1")
	first := start(t, m, manager.Spec{ID: "a", Address: addr})
	zero := start(t, m, manager.Spec{ID: "z", Address: "127.0.0.1:0"})
	saves, _ := store.state()

	tests := []struct {
		name string
		spec manager.Spec
		want manager.Listener
	}{
		{"same id and address", manager.Spec{ID: "a", Address: addr}, first},
		{"same id, address spelt as localhost", manager.Spec{ID: "a", Address: "localhost:" + strconv.Itoa(int(first.BoundAddress.Port()))}, first},
		{"no id, same address", manager.Spec{Address: addr}, first},
		{"no id, the bound address of a port-0 listener", manager.Spec{Address: zero.BoundAddress.String()}, zero},
		{"same id and port 0", manager.Spec{ID: "z", Address: "127.0.0.1:0"}, zero},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := start(t, m, tc.spec)
			if got.ID != tc.want.ID || got.BoundAddress != tc.want.BoundAddress || !got.Created.Equal(tc.want.Created) || got.Generation != 1 {
				t.Errorf("Start(%+v): got %+v, want %+v", tc.spec, got, tc.want)
			}
		})
	}
	if ls, _ := m.List("", 0); len(ls) != 2 {
		t.Errorf("List: got %v, want [a z]", ids(ls))
	}
	if got, _ := store.state(); got != saves {
		t.Errorf("saves after repeated starts: got %d, want %d (nothing changed)", got, saves)
	}
}

func TestStartRequestIDReplay(t *testing.T) {
	m := newManager(t, manager.Options{})
	first, err := m.Start(ctx(t), manager.Spec{Address: "127.0.0.1:0"}, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	// Port 0 never matches another listener, so only the request id makes
	// the retry return the first answer, even with other arguments.
	for _, spec := range []manager.Spec{{Address: "127.0.0.1:0"}, {ID: "other", Address: "127.0.0.1:0"}} {
		got, err := m.Start(ctx(t), spec, "req-1")
		if err != nil || got.ID != first.ID || got.BoundAddress != first.BoundAddress {
			t.Errorf("replay of req-1 with %+v: got %+v, %v, want %+v", spec, got, err, first)
		}
	}
	other, err := m.Start(ctx(t), manager.Spec{Address: "127.0.0.1:0"}, "req-2")
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID {
		t.Errorf("req-2: got the listener of req-1 (%s), want a new one", first.ID)
	}
	if ls, _ := m.List("", 0); len(ls) != 2 {
		t.Errorf("List: got %v, want 2 listeners", ids(ls))
	}
	// Once the listener is stopped, the request id starts a new one.
	if _, err := m.Stop(ctx(t), first.ID, 0); err != nil {
		t.Fatal(err)
	}
	again, err := m.Start(ctx(t), manager.Spec{ID: "again", Address: "127.0.0.1:0"}, "req-1")
	if err != nil || again.ID != "again" {
		t.Errorf("req-1 after its listener stopped: got %+v, %v, want a new listener \"again\"", again, err)
	}
}

func TestStartConflicts(t *testing.T) {
	m := newManager(t, manager.Options{})
	addr := freeAddr(t, "127.0.0.1")
	a := start(t, m, manager.Spec{ID: "a", Address: addr})
	plain := hold(t, "127.0.0.1")
	plainAddr := plain.LocalAddr().(*net.UDPAddr).AddrPort().String()
	other := newManager(t, manager.Options{})
	otherL := start(t, other, manager.Spec{ID: "x", Address: "127.0.0.1:0"})

	tests := []struct {
		name string
		spec manager.Spec
		want error
	}{
		{"same id, other address", manager.Spec{ID: "a", Address: "127.0.0.1:0"}, manager.ErrAlreadyExists},
		{"same id, other workers", manager.Spec{ID: "a", Address: addr, Workers: 2}, manager.ErrAlreadyExists},
		{"other id, same address", manager.Spec{ID: "b", Address: addr}, manager.ErrAddressInUse},
		{"no id, same address, other workers", manager.Spec{Address: addr, Workers: 2}, manager.ErrAddressInUse},
		{"wildcard over a listener's port", manager.Spec{ID: "b", Address: "0.0.0.0:" + strconv.Itoa(int(a.BoundAddress.Port()))}, manager.ErrAddressInUse},
		{"port of a plain socket", manager.Spec{ID: "b", Address: plainAddr}, manager.ErrAddressInUse},
		{"port of another manager", manager.Spec{ID: "b", Address: otherL.BoundAddress.String()}, manager.ErrAddressInUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := m.Start(ctx(t), tc.spec, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start(%+v): got %+v, %v, want %v", tc.spec, l, err, tc.want)
			}
		})
	}
	// A kernel refusal keeps its errno too.
	_, err := m.Start(ctx(t), manager.Spec{ID: "b", Address: plainAddr}, "")
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start on a plain socket's port: got %v, want it to wrap EADDRINUSE", err)
	}
	if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"a"}) {
		t.Errorf("List after conflicts: got %v, want [a]", ids(ls))
	}
	mustEcho(t, a.BoundAddress, "a still answers")
}

func TestStartQuota(t *testing.T) {
	m := newManager(t, manager.Options{MaxListeners: 2})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	start(t, m, manager.Spec{ID: "b", Address: "127.0.0.1:0"})
	if _, err := m.Start(ctx(t), manager.Spec{ID: "c", Address: "127.0.0.1:0"}, ""); !errors.Is(err, manager.ErrQuotaExceeded) {
		t.Fatalf("third Start with MaxListeners 2: got %v, want %v", err, manager.ErrQuotaExceeded)
	}
	// At the limit an idempotent repeat still answers.
	if l, err := m.Start(ctx(t), manager.Spec{ID: "a", Address: "127.0.0.1:0"}, ""); err != nil || l.BoundAddress != a.BoundAddress {
		t.Errorf("repeat Start at the limit: got %+v, %v, want listener a", l, err)
	}
	// A stop makes room.
	if _, err := m.Stop(ctx(t), "b", 0); err != nil {
		t.Fatal(err)
	}
	start(t, m, manager.Spec{ID: "c", Address: "127.0.0.1:0"})
}

func TestStop(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	start(t, m, manager.Spec{ID: "b", Address: "127.0.0.1:0"})
	for i := range 3 {
		mustEcho(t, a.BoundAddress, "ping "+strconv.Itoa(i))
	}
	got, err := m.Stop(ctx(t), "a", 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got.ID != "a" || got.State != manager.StateStopped || got.BoundAddress != a.BoundAddress || got.Generation != 1 || got.Workers != 1 {
		t.Errorf("Stop: got %+v, want a stopped on %v, generation 1, 1 worker", got, a.BoundAddress)
	}
	// The listener has closed, so its counters are final.
	if s := got.Stats; s.DatagramsReceived != 3 || s.DatagramsSent != 3 || s.BytesReceived != 18 || s.BytesSent != 18 {
		t.Errorf("final stats: got %+v, want 3 datagrams and 18 bytes each way", s)
	}
	mustBindable(t, a.BoundAddress)
	if _, err := m.Get("a"); !errors.Is(err, manager.ErrNotFound) {
		t.Errorf("Get after Stop: got %v, want %v", err, manager.ErrNotFound)
	}
	if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"b"}) {
		t.Errorf("List after Stop: got %v, want [b]", ids(ls))
	}
	if _, specs := store.state(); !cmp.Equal(specs, []manager.Spec{{ID: "b", Address: "127.0.0.1:0"}}) {
		t.Errorf("saved after Stop: got %+v, want only b", specs)
	}

	tests := []struct {
		name  string
		id    string
		drain time.Duration
		want  error
	}{
		{"again", "a", 0, manager.ErrNotFound},
		{"unknown id", "nope", 0, manager.ErrNotFound},
		{"negative drain", "b", -time.Second, manager.ErrInvalidArgument},
		{"drain over a minute", "b", 2 * time.Minute, manager.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := m.Stop(ctx(t), tc.id, tc.drain); !errors.Is(err, tc.want) {
				t.Errorf("Stop(%q, %v): got %v, want %v", tc.id, tc.drain, err, tc.want)
			}
		})
	}
	// The same id and address can be started again.
	again := start(t, m, manager.Spec{ID: "a", Address: a.BoundAddress.String()})
	mustEcho(t, again.BoundAddress, "back")
}

func TestRebind(t *testing.T) {
	tests := []struct {
		name     string
		from, to func(t *testing.T) string
	}{
		{"ipv4 to ipv4",
			func(t *testing.T) string { return freeAddr(t, "127.0.0.1") },
			func(t *testing.T) string { return freeAddr(t, "127.0.0.1") }},
		{"fixed port to port 0",
			func(t *testing.T) string { return freeAddr(t, "127.0.0.1") },
			func(*testing.T) string { return "127.0.0.1:0" }},
		{"ipv4 to ipv6",
			func(*testing.T) string { return "127.0.0.1:0" },
			func(t *testing.T) string { skipWithoutIPv6(t); return "[::1]:0" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{}
			m := newManager(t, manager.Options{Store: store})
			from, to := tc.from(t), tc.to(t)
			before := start(t, m, manager.Spec{ID: "a", Address: from})
			mustEcho(t, before.BoundAddress, "one")
			mustEcho(t, before.BoundAddress, "two")

			after, err := m.Rebind(ctx(t), "a", to, 100*time.Millisecond)
			if err != nil {
				t.Fatalf("Rebind(a, %s): %v", to, err)
			}
			if after.ID != "a" || after.Address != to || after.State != manager.StateRunning || after.Generation != 2 {
				t.Errorf("Rebind: got %+v, want a running on %s, generation 2", after, to)
			}
			if after.BoundAddress == before.BoundAddress || after.BoundAddress.Port() == 0 {
				t.Errorf("BoundAddress: got %v, want a new resolved address (was %v)", after.BoundAddress, before.BoundAddress)
			}
			if !after.Created.Equal(before.Created) || after.Bound.Before(before.Bound) {
				t.Errorf("Created, Bound: got %v, %v, want %v and not before %v", after.Created, after.Bound, before.Created, before.Bound)
			}
			mustEcho(t, after.BoundAddress, "three")
			mustNotEcho(t, before.BoundAddress)
			mustBindable(t, before.BoundAddress)
			if _, specs := store.state(); !cmp.Equal(specs, []manager.Spec{{ID: "a", Address: to}}) {
				t.Errorf("saved after Rebind: got %+v, want a on %s", specs, to)
			}

			// Counters carry over: 2 datagrams before the rebind, 2 after
			// (the one above and this one).
			mustEcho(t, after.BoundAddress, "four")
			var got manager.Listener
			waitFor(t, "4 datagrams counted", func() bool {
				got, err = m.Get("a")
				return err == nil && got.Stats.DatagramsSent == 4
			})
			if s := got.Stats; s.DatagramsReceived != 4 || s.BytesReceived != 15 || s.BytesSent != 15 {
				t.Errorf("stats after rebind: got %+v, want 4 datagrams and 15 bytes each way", s)
			}
		})
	}
}

func TestRebindSameAddress(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	addr := freeAddr(t, "127.0.0.1")
	a := start(t, m, manager.Spec{ID: "a", Address: addr})
	saves, _ := store.state()
	for _, to := range []string{addr, "localhost:" + strconv.Itoa(int(a.BoundAddress.Port()))} {
		got, err := m.Rebind(ctx(t), "a", to, 0)
		if err != nil {
			t.Fatalf("Rebind(a, %s) to where it is: %v", to, err)
		}
		if got.Generation != 1 || got.BoundAddress != a.BoundAddress || !got.Bound.Equal(a.Bound) {
			t.Errorf("Rebind(a, %s): got %+v, want it unchanged: %+v", to, got, a)
		}
	}
	if got, _ := store.state(); got != saves {
		t.Errorf("saves: got %d, want %d (nothing changed)", got, saves)
	}
	mustEcho(t, a.BoundAddress, "still here")
}

// TestRebindToOwnBoundPort pins a port-0 listener to the port it already
// has: nothing moves, and the saved address becomes the fixed one.
func TestRebindToOwnBoundPort(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	to := a.BoundAddress.String()
	got, err := m.Rebind(ctx(t), "a", to, 0)
	if err != nil {
		t.Fatalf("Rebind(a, %s), its own bound address: %v", to, err)
	}
	if got.Address != to || got.BoundAddress != a.BoundAddress || got.Generation != 1 {
		t.Errorf("Rebind: got %+v, want address %s on the same socket, generation 1", got, to)
	}
	if _, specs := store.state(); !cmp.Equal(specs, []manager.Spec{{ID: "a", Address: to}}) {
		t.Errorf("saved: got %+v, want a on %s", specs, to)
	}
	mustEcho(t, a.BoundAddress, "same socket")
}

func TestRebindFails(t *testing.T) {
	m := newManager(t, manager.Options{})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	b := start(t, m, manager.Spec{ID: "b", Address: freeAddr(t, "127.0.0.1")})
	plain := hold(t, "127.0.0.1")

	tests := []struct {
		name, id, to string
		drain        time.Duration
		want         error
	}{
		{"address of another listener", "a", b.Address, 0, manager.ErrAddressInUse},
		{"bound address of another listener", "b", a.BoundAddress.String(), 0, manager.ErrAddressInUse},
		{"address of a plain socket", "a", plain.LocalAddr().String(), 0, manager.ErrAddressInUse},
		{"bad address", "a", "foo:1", 0, manager.ErrInvalidAddress},
		{"port out of range", "a", "127.0.0.1:65536", 0, manager.ErrInvalidAddress},
		{"multicast", "a", "224.0.0.1:0", 0, manager.ErrInvalidAddress},
		{"broadcast", "a", "127.255.255.255:0", 0, manager.ErrInvalidAddress},
		{"unknown zone", "a", "[fe80::1%nosuchif]:0", 0, manager.ErrInvalidAddress},
		{"negative drain", "a", "127.0.0.1:0", -time.Second, manager.ErrInvalidArgument},
		{"unknown id", "nope", "127.0.0.1:0", 0, manager.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := m.Rebind(ctx(t), tc.id, tc.to, tc.drain); !errors.Is(err, tc.want) {
				t.Fatalf("Rebind(%q, %q): got %+v, %v, want %v", tc.id, tc.to, l, err, tc.want)
			}
			// Both listeners keep serving where they were.
			for _, want := range []manager.Listener{a, b} {
				got, err := m.Get(want.ID)
				if err != nil || got.BoundAddress != want.BoundAddress || got.Generation != 1 || got.Address != want.Address {
					t.Errorf("Get(%q) after failed Rebind: got %+v, %v, want it unchanged", want.ID, got, err)
				}
				mustEcho(t, want.BoundAddress, "still "+want.ID)
			}
		})
	}
}

func TestList(t *testing.T) {
	m := newManager(t, manager.Options{})
	for _, id := range []string{"c", "a", "d", "b"} {
		start(t, m, manager.Spec{ID: id, Address: "127.0.0.1:0"})
	}
	tests := []struct {
		name     string
		after    string
		limit    int
		want     []string
		wantMore bool
	}{
		{"all", "", 0, []string{"a", "b", "c", "d"}, false},
		{"negative limit is no limit", "", -1, []string{"a", "b", "c", "d"}, false},
		{"first page", "", 2, []string{"a", "b"}, true},
		{"second page", "b", 2, []string{"c", "d"}, false},
		{"after the last", "d", 2, []string{}, false},
		{"after an id that is not there", "aa", 1, []string{"b"}, true},
		{"limit equals what is left", "a", 3, []string{"b", "c", "d"}, false},
		{"one at a time", "c", 1, []string{"d"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ls, more := m.List(tc.after, tc.limit)
			if diff := cmp.Diff(tc.want, ids(ls)); diff != "" || more != tc.wantMore {
				t.Errorf("List(%q, %d): got %v more=%v, want %v more=%v", tc.after, tc.limit, ids(ls), more, tc.want, tc.wantMore)
			}
		})
	}
	// Walking the pages one by one visits every listener once.
	var got []string
	after := ""
	for range 10 {
		ls, more := m.List(after, 1)
		got = append(got, ids(ls)...)
		if !more {
			break
		}
		after = ls[len(ls)-1].ID
	}
	if want := []string{"a", "b", "c", "d"}; !cmp.Equal(got, want) {
		t.Errorf("pages of 1: got %v, want %v", got, want)
	}
}

func TestStats(t *testing.T) {
	m := newManager(t, manager.Options{})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	b := start(t, m, manager.Spec{ID: "b", Address: "127.0.0.1:0"})
	mustEcho(t, a.BoundAddress, "a1")
	mustEcho(t, a.BoundAddress, "a2")
	for i := range 3 {
		mustEcho(t, b.BoundAddress, "b"+strconv.Itoa(i))
	}
	if _, err := m.Stop(ctx(t), "a", 0); err != nil {
		t.Fatal(err)
	}
	var (
		total listener.Stats
		per   []manager.ListenerStats
		err   error
	)
	waitFor(t, "b's 3 datagrams counted", func() bool {
		total, per, err = m.Stats("")
		return err == nil && len(per) == 1 && per[0].Stats.DatagramsSent == 3
	})
	if per[0].ID != "b" || per[0].Stats.DatagramsReceived != 3 {
		t.Errorf("per listener: got %+v, want only b with 3 datagrams", per)
	}
	// The totals keep the stopped listener's counters.
	if total.DatagramsReceived != 5 || total.DatagramsSent != 5 || total.BytesReceived != 10 {
		t.Errorf("total: got %+v, want 5 datagrams, 10 bytes (stopped a included)", total)
	}
	if total.Start.IsZero() || total.Start.After(a.Created) {
		t.Errorf("total start: got %v, want the manager's start, before %v", total.Start, a.Created)
	}

	_, one, err := m.Stats("b")
	if err != nil || len(one) != 1 || one[0].ID != "b" || one[0].Stats.DatagramsSent != 3 {
		t.Errorf("Stats(b): got %+v, %v, want b with 3 datagrams", one, err)
	}
	if _, _, err := m.Stats("a"); !errors.Is(err, manager.ErrNotFound) {
		t.Errorf("Stats of a stopped listener: got %v, want %v", err, manager.ErrNotFound)
	}
}

func TestStoreFailure(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	store.setFail(errDiskFull)

	t.Run("start", func(t *testing.T) {
		addr := freeAddr(t, "127.0.0.1")
		_, err := m.Start(ctx(t), manager.Spec{ID: "b", Address: addr}, "req-b")
		if !errors.Is(err, manager.ErrStateSave) || !errors.Is(err, errDiskFull) {
			t.Fatalf("Start: got %v, want %v wrapping %v", err, manager.ErrStateSave, errDiskFull)
		}
		if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"a"}) {
			t.Errorf("List: got %v, want [a]", ids(ls))
		}
		mustBindable(t, netip.MustParseAddrPort(addr))
		// The request id was not remembered: once the store works, a retry
		// really starts the listener.
		store.setFail(nil)
		defer store.setFail(errDiskFull)
		l, err := m.Start(ctx(t), manager.Spec{ID: "b", Address: addr}, "req-b")
		if err != nil || l.ID != "b" {
			t.Fatalf("retry: got %+v, %v, want b started", l, err)
		}
		mustEcho(t, l.BoundAddress, "b")
		if _, err := m.Stop(ctx(t), "b", 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		if _, err := m.Stop(ctx(t), "a", 0); !errors.Is(err, manager.ErrStateSave) {
			t.Fatalf("Stop: got %v, want %v", err, manager.ErrStateSave)
		}
		if got, err := m.Get("a"); err != nil || got.State != manager.StateRunning {
			t.Errorf("Get after failed Stop: got %+v, %v, want a running", got, err)
		}
		mustEcho(t, a.BoundAddress, "still running")
	})
	t.Run("rebind", func(t *testing.T) {
		to := freeAddr(t, "127.0.0.1")
		if _, err := m.Rebind(ctx(t), "a", to, 0); !errors.Is(err, manager.ErrStateSave) {
			t.Fatalf("Rebind: got %v, want %v", err, manager.ErrStateSave)
		}
		got, err := m.Get("a")
		if err != nil || got.Address != "127.0.0.1:0" || got.BoundAddress != a.BoundAddress || got.Generation != 1 {
			t.Errorf("Get after failed Rebind: got %+v, %v, want a unchanged", got, err)
		}
		mustEcho(t, a.BoundAddress, "old address")
		mustBindable(t, netip.MustParseAddrPort(to))
	})
	if _, specs := store.state(); !cmp.Equal(specs, []manager.Spec{{ID: "a", Address: "127.0.0.1:0"}}) {
		t.Errorf("last saved: got %+v, want only a", specs)
	}
}

func TestStoreSeesEveryChange(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	moved, elsewhere := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	b := manager.Spec{ID: "b", Address: "127.0.0.1:0", Workers: 2}
	a := manager.Spec{ID: "a", Address: "localhost:0"}
	bMoved := manager.Spec{ID: "b", Address: moved, Workers: 2}
	steps := []struct {
		name string
		do   func(t *testing.T) error
		want []manager.Spec // nil: nothing changed, so no save
	}{
		{"start b", func(t *testing.T) error {
			_, err := m.Start(ctx(t), b, "")
			return err
		}, []manager.Spec{b}},
		{"start a", func(t *testing.T) error {
			_, err := m.Start(ctx(t), a, "")
			return err
		}, []manager.Spec{a, b}},
		{"repeat start a", func(t *testing.T) error {
			_, err := m.Start(ctx(t), a, "")
			return err
		}, nil},
		{"start a elsewhere fails", func(t *testing.T) error {
			if _, err := m.Start(ctx(t), manager.Spec{ID: "a", Address: elsewhere}, ""); !errors.Is(err, manager.ErrAlreadyExists) {
				return fmt.Errorf("got %v, want %v", err, manager.ErrAlreadyExists)
			}
			return nil
		}, nil},
		{"rebind b", func(t *testing.T) error {
			_, err := m.Rebind(ctx(t), "b", moved, 0)
			return err
		}, []manager.Spec{a, bMoved}},
		{"rebind b where it is", func(t *testing.T) error {
			_, err := m.Rebind(ctx(t), "b", moved, 0)
			return err
		}, nil},
		{"stop a", func(t *testing.T) error {
			_, err := m.Stop(ctx(t), "a", 0)
			return err
		}, []manager.Spec{bMoved}},
		{"stop b", func(t *testing.T) error {
			_, err := m.Stop(ctx(t), "b", 0)
			return err
		}, []manager.Spec{}},
	}
	for _, step := range steps {
		savesBefore, lastBefore := store.state()
		if err := step.do(t); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		saves, got := store.state()
		want, wantSaves := step.want, savesBefore+1
		if want == nil {
			want, wantSaves = lastBefore, savesBefore
		}
		if saves != wantSaves {
			t.Errorf("%s: got %d saves, want %d", step.name, saves-savesBefore, wantSaves-savesBefore)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: saved specs (-want +got):\n%s", step.name, diff)
		}
		if diff := cmp.Diff(want, m.Specs()); diff != "" {
			t.Errorf("%s: Specs() (-want +got):\n%s", step.name, diff)
		}
	}
}

func TestShutdown(t *testing.T) {
	store := &fakeStore{}
	m := manager.New(manager.Options{Store: store, Workers: 2})
	a, err := m.Start(ctx(t), manager.Spec{ID: "a", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Start(ctx(t), manager.Spec{ID: "b", Address: "127.0.0.1:0"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// b has been rebound: Shutdown must close its current sockets.
	if b, err = m.Rebind(ctx(t), "b", freeAddr(t, "127.0.0.1"), 0); err != nil {
		t.Fatal(err)
	}
	mustEcho(t, a.BoundAddress, "before shutdown")
	savesBefore, specsBefore := store.state()

	if err := m.Shutdown(ctx(t)); err != nil {
		t.Fatalf("Shutdown: got %v, want nil", err)
	}
	for _, l := range []manager.Listener{a, b} {
		mustBindable(t, l.BoundAddress)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Start", func() error {
			_, err := m.Start(ctx(t), manager.Spec{ID: "c", Address: "127.0.0.1:0"}, "")
			return err
		}},
		{"Start existing", func() error {
			_, err := m.Start(ctx(t), manager.Spec{ID: "a", Address: "127.0.0.1:0"}, "")
			return err
		}},
		{"Stop", func() error { _, err := m.Stop(ctx(t), "a", 0); return err }},
		{"Stop unknown", func() error { _, err := m.Stop(ctx(t), "nope", 0); return err }},
		{"Rebind", func() error { _, err := m.Rebind(ctx(t), "a", "127.0.0.1:0", 0); return err }},
		{"Rebind elsewhere", func() error { _, err := m.Rebind(ctx(t), "b", "127.0.0.1:0", 0); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, manager.ErrClosed) {
				t.Errorf("%s after Shutdown: got %v, want %v", c.name, err, manager.ErrClosed)
			}
		})
	}
	// The saved configuration is kept for a restart.
	if saves, specs := store.state(); saves != savesBefore || !cmp.Equal(specs, specsBefore) {
		t.Errorf("store after Shutdown: got %d saves %+v, want %d saves %+v", saves, specs, savesBefore, specsBefore)
	}
	if err := m.Shutdown(ctx(t)); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}
}
