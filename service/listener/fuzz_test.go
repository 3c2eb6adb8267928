package listener

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/udpd/udpd/service/uppercase"
)

// FuzzDatagram sends each input as one datagram through a real listener on
// loopback: the reply must be its uppercase, or, when that would exceed
// the largest payload, no reply and a count in RepliesTooLarge; and the
// listener must go on answering. Nothing a sender can send may stop it.
func FuzzDatagram(f *testing.F) {
	for _, seed := range []string{"", "hello", "straße \xff\xfe ΐ", "\x00\x01\x02", string(bytes.Repeat([]byte("ΐ"), 20000))} {
		f.Add([]byte(seed))
	}
	l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 2})
	if err != nil {
		f.Fatal(err)
	}
	go l.Serve()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	buf := make([]byte, 1<<17)
	f.Fuzz(func(t *testing.T, in []byte) {
		// A socket of its own for each input: the fuzzer runs an input
		// many times in a row, and a peer that sends back, 16 times within
		// a second each, the reply it just got (any input that is its own
		// uppercase) is taken for an echo loop and not answered.
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadBuffer(1 << 20)
		if len(in) > MaxPayloadIPv4 {
			in = in[:MaxPayloadIPv4]
		}
		want := uppercase.Append(nil, in)
		if _, err := c.Write(in); err != nil {
			t.Fatalf("write %d bytes: %v", len(in), err)
		}
		if len(want) > MaxPayloadIPv4 {
			want = nil // not answered; the next datagram proves the listener lives
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			want = []byte("PING")
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no reply to %d bytes: %v", len(in), err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("reply to %q = %q, want %q", in, buf[:n], want)
		}
	})
}
