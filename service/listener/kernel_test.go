//go:build linux && !udpd_portable

package listener

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestKernelDropsCounted overflows a socket's receive queue while the
// listener is not reading yet, then serves it: the kernel's drop count
// (SO_MEMINFO) must show up in Stats, and not in DatagramsReceived.
func TestKernelDropsCounted(t *testing.T) {
	l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := unix.SetsockoptInt(l.workers[0].fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l)
	const sent = 500
	payload := make([]byte, 512)
	for range sent {
		c.Write(payload)
	}
	go l.Serve()
	s := settled(t, l, func(s Stats) bool { return s.KernelDrops > 0 && s.DatagramsReceived+s.KernelDrops == sent })
	if s.KernelDrops == 0 {
		t.Fatalf("stats %+v: no kernel drops counted after overflowing a 4 KiB queue with %d datagrams", s, sent)
	}
	if s.DatagramsReceived+s.KernelDrops != sent {
		t.Errorf("received %d + kernel drops %d = %d, want the %d sent", s.DatagramsReceived, s.KernelDrops, s.DatagramsReceived+s.KernelDrops, sent)
	}
	// Counters, with no system call, has the count the last Stats read.
	if c := l.Counters(); c != s {
		t.Errorf("Counters after Stats: got %+v, want %+v", c, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.Shutdown(ctx)
}
