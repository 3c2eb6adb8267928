package manager_test

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udpd/udpd/service/manager"
)

// TestRebindUnderLoad rebinds a listener back and forth while closed-loop
// clients keep sending, each to the address it last learnt. udpd must
// answer every datagram it received: nothing received is dropped, and a
// client only ever loses a datagram it sent to an address already closed
// (at most one per client per rebind: each has one datagram in flight).
func TestRebindUnderLoad(t *testing.T) {
	m := newManager(t, manager.Options{Workers: 2})
	l := start(t, m, manager.Spec{ID: "busy", Address: "127.0.0.1:0"})
	var cur atomic.Pointer[netip.AddrPort]
	addr := l.BoundAddress
	cur.Store(&addr)

	const clients, rebinds = 4, 6
	stop := make(chan struct{})
	var answered, lost atomic.Uint64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 256)
			// Bounded: at most 20000 datagrams per client.
			for n := 0; n < 20000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := fmt.Sprintf("client %d datagram %d", i, n)
				if _, err := c.WriteToUDPAddrPort([]byte(msg), *cur.Load()); err != nil {
					t.Error(err)
					return
				}
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					lost.Add(1)
					continue
				}
				answered.Add(1)
			}
		}()
	}
	// Each address serves some traffic before the next rebind: wait for
	// replies to come, not for a guessed time.
	traffic := func() {
		t.Helper()
		want := answered.Load() + 20
		for deadline := time.Now().Add(10 * time.Second); answered.Load() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no traffic answered in 10 s (answered %d, lost %d)", answered.Load(), lost.Load())
			}
		}
	}
	hosts := []string{"127.0.0.2", "127.0.0.1"}
	for i := range rebinds {
		traffic()
		nl, err := m.Rebind(ctx(t), "busy", hosts[i%2]+":0", time.Second)
		if err != nil {
			t.Fatalf("rebind %d: %v", i, err)
		}
		a := nl.BoundAddress
		cur.Store(&a)
	}
	traffic()
	close(stop)
	wg.Wait()

	got, err := m.Get("busy")
	if err != nil {
		t.Fatal(err)
	}
	s := got.Stats
	// Counters are added right after a batch's replies leave: let them settle.
	for deadline := time.Now().Add(2 * time.Second); s.DatagramsSent < answered.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		got, _ = m.Get("busy")
		s = got.Stats
	}
	if got.Generation != rebinds+1 {
		t.Errorf("generation = %d, want %d", got.Generation, rebinds+1)
	}
	if s.Dropped() != 0 || s.DatagramsReceived != s.DatagramsSent {
		t.Errorf("stats %+v: every datagram received must be answered", s)
	}
	if s.DatagramsSent < answered.Load() {
		t.Errorf("clients got %d answers but udpd counted %d sent", answered.Load(), s.DatagramsSent)
	}
	if lost.Load() > clients*rebinds {
		t.Errorf("clients lost %d datagrams over %d rebinds, want at most %d (one in flight each)", lost.Load(), rebinds, clients*rebinds)
	}
	if answered.Load() < 100 {
		t.Errorf("only %d answers: the load did not run", answered.Load())
	}
	t.Logf("%d answered, %d lost to closed addresses, %d rebinds", answered.Load(), lost.Load(), rebinds)
}
