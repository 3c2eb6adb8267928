//go:build unix

package manager_test

import (
	"errors"
	"github.com/udpd/udpd/service/internal/udptest"
	"net/netip"
	"testing"
	"time"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

// TestHandOverKeepsIdsGenerationsAndTotals hands two listeners from one
// Manager to another inside one process, as an upgrade does between two:
// changes are refused while frozen, ids, addresses and generations carry
// over, and the totals continue.
func TestHandOverKeepsIdsGenerationsAndTotals(t *testing.T) {
	old := manager.New(manager.Options{Workers: 2})
	a := start(t, old, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	b := start(t, old, manager.Spec{ID: "b", Address: "127.0.0.1:0"})
	if _, err := old.Rebind(ctx(t), "b", "127.0.0.2:0", time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ = old.Get("b")
	for range 3 {
		mustEcho(t, a.BoundAddress, "a")
	}
	mustEcho(t, b.BoundAddress, "b")
	// A stopped listener's counters are in the daemon's totals.
	gone := start(t, old, manager.Spec{ID: "gone", Address: "127.0.0.1:0"})
	mustEcho(t, gone.BoundAddress, "gone")
	if _, err := old.Stop(ctx(t), "gone", time.Second); err != nil {
		t.Fatal(err)
	}

	handed, err := old.Freeze(ctx(t))
	if err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if _, err := old.Start(ctx(t), manager.Spec{ID: "c", Address: "127.0.0.1:0"}, ""); !errors.Is(err, manager.ErrUpgrading) {
		t.Errorf("Start while frozen: %v, want ErrUpgrading", err)
	}
	if _, err := old.Stop(ctx(t), "a", time.Second); !errors.Is(err, manager.ErrUpgrading) {
		t.Errorf("Stop while frozen: %v, want ErrUpgrading", err)
	}
	if len(handed) != 2 || handed[0].Spec.ID != "a" || handed[1].Spec.ID != "b" || handed[1].Generation != 2 {
		t.Fatalf("Freeze handed %+v, want a and b (generation 2)", handed)
	}

	next := newManager(t, manager.Options{})
	var adopt []manager.Adopted
	for _, h := range handed {
		adopt = append(adopt, manager.Adopted{Spec: h.Spec, Files: udptest.DupFiles(t, h.Listener.Sockets()), Generation: h.Generation, Created: h.Created, Bound: h.Bound})
	}
	if _, err := next.Adopt(adopt); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	wantTotal, _, _ := old.Stats("")
	c := old.Release()
	if _, err := old.Start(ctx(t), manager.Spec{Address: "127.0.0.1:0"}, ""); !errors.Is(err, manager.ErrClosed) {
		t.Errorf("Start after Release: %v, want ErrClosed", err)
	}
	next.Continue(c)

	total, per, err := next.Stats("")
	if err != nil {
		t.Fatal(err)
	}
	if total.DatagramsReceived != wantTotal.DatagramsReceived || total.DatagramsReceived != 5 || total.BytesSent != wantTotal.BytesSent {
		t.Errorf("totals after the hand-over: received %d bytes sent %d, want %d and %d (5 datagrams)",
			total.DatagramsReceived, total.BytesSent, wantTotal.DatagramsReceived, wantTotal.BytesSent)
	}
	if !total.Start.Equal(wantTotal.Start) {
		t.Errorf("total start %v, want %v", total.Start, wantTotal.Start)
	}
	if len(per) != 2 || per[0].Stats.DatagramsReceived != 3 || per[1].Stats.DatagramsReceived != 1 {
		t.Errorf("per listener %+v, want a 3 and b 1", per)
	}
	// The new Manager answers on the same addresses and keeps counting.
	mustEcho(t, a.BoundAddress, "a")
	gotB, err := next.Get("b")
	if err != nil {
		t.Fatal(err)
	}
	if gotB.Generation != 2 || gotB.BoundAddress != b.BoundAddress || !gotB.Created.Equal(b.Created) {
		t.Errorf("b after the hand-over: generation %d address %v created %v, want 2, %v, %v",
			gotB.Generation, gotB.BoundAddress, gotB.Created, b.BoundAddress, b.Created)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		s, _ := next.Get("a")
		if s.Stats.DatagramsReceived == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a counted %d datagrams after one more, want 4", s.Stats.DatagramsReceived)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestThawAcceptsChangesAgain(t *testing.T) {
	m := newManager(t, manager.Options{})
	start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	if _, err := m.Freeze(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Freeze(ctx(t)); !errors.Is(err, manager.ErrUpgrading) {
		t.Errorf("second Freeze: %v, want ErrUpgrading", err)
	}
	m.Thaw()
	l := start(t, m, manager.Spec{ID: "b", Address: "127.0.0.1:0"})
	mustEcho(t, l.BoundAddress, "b")
}

func TestAdoptRefusesATakenIdOrAddress(t *testing.T) {
	m := newManager(t, manager.Options{})
	start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	l, err := listener.Listen(ctx(t), listener.Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := m.Adopt([]manager.Adopted{{Spec: manager.Spec{ID: "a", Address: l.Addr().String()}, Files: udptest.DupFiles(t, l.Sockets())}}); !errors.Is(err, manager.ErrAlreadyExists) {
		t.Errorf("Adopt of a taken id: %v, want ErrAlreadyExists", err)
	}
	// Another id on sockets of a's own address.
	handed, err := m.Freeze(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Thaw()
	if _, err := m.Adopt([]manager.Adopted{{Spec: manager.Spec{ID: "c", Address: handed[0].Listener.Addr().String()}, Files: udptest.DupFiles(t, handed[0].Listener.Sockets())}}); !errors.Is(err, manager.ErrAddressInUse) {
		t.Errorf("Adopt of a held address: %v, want ErrAddressInUse", err)
	}
}
