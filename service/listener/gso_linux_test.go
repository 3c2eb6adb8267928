//go:build linux && !udpd_portable

package listener

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// gsoScript is what each client sends, in order: runs of equal sizes (one
// message each), shorter last segments, a longer reply after a shorter
// one, empty and one-byte datagrams, replies that the uppercase makes
// longer (ß → SS) or that no longer fit one segment, and sizes at and
// around 1472 (the largest segment over a 1500-byte MTU), and runs whose
// total passes 64 KiB.
func gsoScript(client int) []string {
	var s []string
	add := func(n int, size int, fill string) {
		for range n {
			// Tell the datagrams apart: client and index first.
			p := fmt.Sprintf("c%d/%d:", client, len(s)) + strings.Repeat(fill, size/len(fill)+1)
			if size < len(p) {
				p = strings.Repeat(fill, size)
			}
			s = append(s, p[:size])
		}
	}
	add(5, 64, "abc")
	add(1, 30, "xyz") // shorter last
	add(1, 64, "abc") // longer after shorter: a new message
	add(3, 0, "a")
	add(2, 1, "q")
	add(4, 100, "straße ")    // grows by one byte per ß
	add(3, 1472, "segment ")  // largest over a 1500-byte MTU
	add(3, 1473, "segment ")  // one more
	add(50, 1400, "payload ") // 70,000 bytes: more than one message
	add(2, 20000, "big one ") // large segments
	add(1, 9000, "jumbo ")
	add(2, 64, "abc")
	if client == 0 {
		// Alone at the end, so that one batch holds most of them: 84,000
		// bytes, more than one segmented message may carry.
		add(60, 1400, "tail ")
	}
	return s
}

// upper is the reply udpd must send to req.
func upper(req string) string { return strings.ReplaceAll(strings.ToUpper(req), "ß", "SS") }

// exchangeScripts queues every client's script in the listener's socket before it
// is served (so that batches mix the clients' datagrams), serves it, and
// checks that each client gets every reply, right and in order. It returns
// the listener's stats and its worker's segmenter counts.
func exchangeScripts(t *testing.T, l *Listener, clients int) (Stats, segmenter) {
	t.Helper()
	if err := unix.SetsockoptInt(l.workers[0].fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		unix.SetsockoptInt(l.workers[0].fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	conns := make([]*net.UDPConn, clients)
	scripts := make([][]string, clients)
	longest := 0
	for c := range conns {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetReadBuffer(8 << 20); err != nil {
			t.Fatal(err)
		}
		conns[c] = conn
		scripts[c] = gsoScript(c)
		longest = max(longest, len(scripts[c]))
	}
	var want, wantBytes uint64
	for k := range longest { // round robin: every batch holds several clients
		for c, conn := range conns {
			if k < len(scripts[c]) {
				if _, err := conn.Write([]byte(scripts[c][k])); err != nil {
					t.Fatalf("client %d, datagram %d: %v", c, k, err)
				}
				want++
				wantBytes += uint64(len(upper(scripts[c][k])))
			}
		}
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	buf := make([]byte, 1<<16)
	for c, conn := range conns {
		for k, req := range scripts[c] {
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("client %d, reply %d of %d: %v", c, k, len(scripts[c]), err)
			}
			if got := string(buf[:n]); got != upper(req) {
				t.Fatalf("client %d, reply %d: got %d bytes %.40q…, want %d bytes %.40q…", c, k, n, got, len(upper(req)), upper(req))
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	s := l.Stats()
	if s.DatagramsReceived != want || s.DatagramsSent != want || s.BytesSent != wantBytes {
		t.Errorf("stats: received %d, sent %d, bytes sent %d; want %d, %d, %d", s.DatagramsReceived, s.DatagramsSent, s.BytesSent, want, want, wantBytes)
	}
	return s, l.workers[0].seg
}

// TestRepliesSegmented: replies in one batch to the same client leave as
// UDP_SEGMENT messages, and every client still gets each reply, intact and
// in order, whatever the sizes and however the clients interleave.
func TestRepliesSegmented(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort(addr), Workers: 1, Batch: 64})
			if err != nil {
				if strings.HasPrefix(addr, "[") {
					t.Skipf("IPv6 loopback not available: %v", err)
				}
				t.Fatal(err)
			}
			_, seg := exchangeScripts(t, l, 5)
			if seg.sent == 0 {
				t.Errorf("no reply left in a segmented message")
			}
			if seg.refused != 0 {
				t.Errorf("loopback refused %d segmented messages", seg.refused)
			}
		})
	}
}

// TestRepliesUnsegmentedWhenRefused runs the exchange in a network
// namespace whose loopback has a 1500-byte MTU: the kernel refuses
// segments of more than 1472 bytes (EINVAL), and those replies must then
// leave one by one, all of them.
func TestRepliesUnsegmentedWhenRefused(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The namespace belongs to this thread, which is never unlocked:
		// it ends with the goroutine, and the namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			if os.Getenv("CI") == "true" {
				t.Errorf("unshare(CLONE_NEWNET): %v", err)
			} else {
				t.Logf("skipping: cannot create a network namespace: %v", err)
			}
			return
		}
		if err := loopbackMTU(1500); err != nil {
			t.Errorf("loopback in the new namespace: %v", err)
			return
		}
		l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Workers: 1, Batch: 64})
		if err != nil {
			t.Error(err)
			return
		}
		_, seg := exchangeScripts(t, l, 3)
		if seg.refused == 0 {
			t.Errorf("no segmented message refused over a 1500-byte MTU: the test proved nothing")
		}
		if seg.sent == 0 {
			t.Errorf("no reply left in a segmented message")
		}
	}()
	<-done
}

// loopbackMTU sets the loopback interface of the thread's network
// namespace up, with the given MTU.
func loopbackMTU(mtu uint32) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint32(mtu)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("SIOCSIFMTU: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// TestSegmentsKeepTheAskedAddress: a wildcard listener answers each
// datagram from the address it was sent to (pktinfo), so replies to one
// client asked at two addresses are two streams: segmented messages must
// not mix them, and each keeps its order.
func TestSegmentsKeepTheAskedAddress(t *testing.T) {
	l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort("0.0.0.0:0"), Workers: 1, Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	asked := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), l.Addr().Port()),
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), l.Addr().Port()),
	}
	const each = 20
	for k := range each {
		for a, to := range asked {
			if _, err := c.WriteToUDPAddrPort(fmt.Appendf(nil, "to %d, number %02d", a, k), to); err != nil {
				t.Fatal(err)
			}
		}
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve() }()
	next := make([]int, len(asked))
	buf := make([]byte, 64)
	for range len(asked) * each {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("replies so far %v of %d each: %v", next, each, err)
		}
		var a, k int
		if _, err := fmt.Sscanf(string(buf[:n]), "TO %d, NUMBER %02d", &a, &k); err != nil || a < 0 || a >= len(asked) {
			t.Fatalf("reply %q from %v: not one of ours", buf[:n], from)
		}
		if from != asked[a] {
			t.Errorf("reply %q came from %v, want %v, the address asked", buf[:n], from, asked[a])
		}
		if k != next[a] {
			t.Errorf("reply %q from %v: got number %d, want %d (in order)", buf[:n], from, k, next[a])
		}
		next[a] = k + 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if s := l.workers[0].seg; s.sent == 0 {
		t.Errorf("no reply left in a segmented message")
	}
}

// TestCoalescedReceivesAnsweredOneByOne: datagrams sent with UDP_SEGMENT
// reach a listener as one receive (UDP_GRO), and each must still be
// answered on its own: same sizes, a shorter last one, and requests whose
// replies grow (ß → SS), so the replies differ in size.
func TestCoalescedReceivesAnsweredOneByOne(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			l, err := Listen(context.Background(), Config{Addr: netip.MustParseAddrPort(addr), Workers: 1})
			if err != nil {
				if strings.HasPrefix(addr, "[") {
					t.Skipf("IPv6 loopback not available: %v", err)
				}
				t.Fatal(err)
			}
			c := dial(t, l)
			var want []string
			for _, run := range []struct {
				seg, n, last int
				fill         string
			}{
				{64, 16, 64, "abcdefgh"},
				{100, 5, 37, "xyz"},
				{30, 8, 30, "straße "}, // each reply longer than its request
				{1, 3, 1, "q"},
			} {
				var buf []byte
				for k := range run.n {
					size := run.seg
					if k == run.n-1 {
						size = run.last
					}
					p := fmt.Sprintf("%02d", len(want)%100) + strings.Repeat(run.fill, size)
					p = p[:size]
					for !utf8Valid(p) { // keep ß whole, so the expected reply is plain
						p = p[:len(p)-1] + "x"
					}
					buf = append(buf, p...)
					want = append(want, upper(p))
				}
				sendSegmented(t, c, buf, run.seg)
			}
			served := make(chan error, 1)
			go func() { served <- l.Serve() }()
			got := make([]byte, 1<<16)
			for k, w := range want {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(got)
				if err != nil {
					t.Fatalf("reply %d of %d: %v", k, len(want), err)
				}
				if string(got[:n]) != w {
					t.Fatalf("reply %d: got %q, want %q", k, got[:n], w)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := l.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if s := l.Stats(); s.DatagramsReceived != uint64(len(want)) || s.DatagramsSent != uint64(len(want)) {
				t.Errorf("stats: received %d, sent %d; want %d each", s.DatagramsReceived, s.DatagramsSent, len(want))
			}
			if l.workers[0].coalesced == 0 {
				t.Errorf("no receive held several datagrams: UDP_GRO was not exercised")
			}
		})
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// sendSegmented sends buf on c as datagrams of seg bytes (the last may be
// shorter) in one UDP_SEGMENT message.
func sendSegmented(t *testing.T, c *net.UDPConn, buf []byte, seg int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		oob := make([]byte, unix.CmsgSpace(2))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
		_, serr = unix.SendmsgN(int(fd), buf, oob, nil, 0)
	})
	if err != nil || serr != nil {
		t.Fatalf("send %d bytes in segments of %d: %v %v", len(buf), seg, err, serr)
	}
}
