package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestRebindSequenceLosesNothing is the manager's rebind, step by step,
// with the old listener's reader held: datagrams queue on the old socket,
// the new socket is bound and serves, then the old one is released into
// its drain. Every queued datagram is answered, from the old address, and
// the new address answers too.
func TestRebindSequenceLosesNothing(t *testing.T) {
	old, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetReadBuffer(1 << 20)

	// Hold: the old listener is not reading; 200 datagrams queue up.
	const queued = 200
	for i := range queued {
		if _, err := client.WriteToUDPAddrPort([]byte(fmt.Sprintf("q%03d", i)), old.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	// Rebind: bind and serve the new address first.
	nl := start(t, "127.0.0.2:0", 2)
	// Release the old one straight into its drain.
	served := make(chan error, 1)
	go func() { served <- old.Serve() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := old.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}

	answered := map[string]bool{}
	buf := make([]byte, 64)
	for len(answered) < queued {
		client.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := client.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if from != old.Addr() {
			t.Errorf("reply %q came from %v, want the old address %v", buf[:n], from, old.Addr())
		}
		answered[string(buf[:n])] = true
	}
	if len(answered) != queued {
		t.Errorf("answered %d of %d datagrams queued before the rebind", len(answered), queued)
	}
	if s := old.Stats(); s.DatagramsReceived != queued || s.DatagramsSent != queued {
		t.Errorf("old listener stats %+v, want %d received and sent", s, queued)
	}
	if got := roundTrip(t, dial(t, nl), []byte("new")); string(got) != "NEW" {
		t.Errorf("new address answered %q, want NEW", got)
	}
}
