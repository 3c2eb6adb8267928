package listener

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkRoundTrip is one datagram through a listener on loopback and
// back, client and server in this process: the latency of the whole
// path, system calls included. See make bench for throughput.
func BenchmarkRoundTrip(b *testing.B) {
	for _, bc := range []struct{ name, payload string }{
		{"ascii-64", "the quick brown fox jumps over the lazy dog, 0123456789 abcdefgh"},
		{"utf8-64", "grüße aus köln, καλημέρα κόσμε, привет мир!!"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
			if err != nil {
				b.Fatal(err)
			}
			go l.Serve()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				l.Shutdown(ctx)
			}()
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req, buf := []byte(bc.payload), make([]byte, 256)
			c.SetReadDeadline(time.Now().Add(time.Minute))
			b.SetBytes(int64(len(req)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
