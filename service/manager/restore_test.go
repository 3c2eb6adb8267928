package manager_test

import (
	"errors"
	"net"
	"testing"

	"github.com/udpd/udpd/service/manager"
)

func TestRestoreSavesOnce(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	specs := []manager.Spec{
		{ID: "a", Address: "127.0.0.1:0"},
		{ID: "b", Address: "127.0.0.1:0"},
		{Address: "127.0.0.1:0"},
	}
	ls, err := m.Restore(ctx(t), specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 {
		t.Fatalf("Restore started %d listeners, want 3", len(ls))
	}
	for _, l := range ls {
		mustEcho(t, l.BoundAddress, "restored "+l.ID)
	}
	saves, last := store.state()
	if saves != 1 || len(last) != 3 {
		t.Errorf("store saw %d saves, last with %d listeners; want 1 save of 3", saves, len(last))
	}
}

func TestRestoreFailureClosesWhatStarted(t *testing.T) {
	held, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	_, err = m.Restore(ctx(t), []manager.Spec{
		{ID: "first", Address: "127.0.0.1:0"},
		{ID: "clash", Address: held.LocalAddr().String()},
	})
	if !errors.Is(err, manager.ErrAddressInUse) {
		t.Fatalf("Restore: got %v, want ErrAddressInUse", err)
	}
	if ls, _ := m.List("", 0); len(ls) != 0 {
		t.Errorf("a failed Restore left %d listeners", len(ls))
	}
	if saves, _ := store.state(); saves != 0 {
		t.Errorf("a failed Restore saved %d times, want 0", saves)
	}
}
