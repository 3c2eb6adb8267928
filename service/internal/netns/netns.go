//go:build linux

package netns

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace made for one test.
type NS struct {
	Name string
}

// New makes a namespace with its loopback up, removed at the end of the
// test. Where namespaces cannot be made (not root, no ip command) the
// test is skipped with the reason, except under CI=true, where it fails.
func New(t testing.TB) *NS {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	ns := &NS{Name: fmt.Sprintf("udpd-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot create a network namespace (needs root and iproute2): ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NAME args…` and fails the test if it fails.
func (ns *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
}

// AddAddr puts prefix (an address with its length, a documentation or
// link-local one) on dev and waits until the address takes datagrams:
// the kernel installs an IPv6 address's local route a little later, from
// a work queue, even without duplicate address detection.
func (ns *NS) AddAddr(t testing.TB, dev, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	args := []string{"addr", "add", prefix, "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	ns.IP(t, args...)
	var err error
	ns.Do(t, func() {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if err = selfDatagram(p.Addr(), dev); err == nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("address %s on %s in %s never took a datagram: %v", prefix, dev, ns.Name, err)
	}
}

// selfDatagram sends a datagram from a to a and reads it back.
func selfDatagram(a netip.Addr, dev string) error {
	if a.Is6() && a.IsLinkLocalUnicast() {
		a = a.WithZone(dev)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.WriteToUDPAddrPort([]byte("ready?"), c.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 16))
	return err
}

// Do runs f on a thread that is inside the namespace: the sockets f makes
// belong to it, and keep belonging to it whichever thread uses them later.
func (ns *NS) Do(t testing.TB, f func()) {
	t.Helper()
	target, err := unix.Open("/var/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", ns.Name, err)
	}
	defer unix.Close(target)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		defer func() {
			// A thread that cannot go back stays locked, and the
			// runtime ends it with this goroutine.
			if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter namespace %s: %v", ns.Name, err)
	}
}

// Spoofer sends UDP datagrams with a source address of its choosing,
// through a raw socket.
type Spoofer struct {
	fd int
	v6 bool
}

// NewSpoofer opens a raw socket for IPv4 or IPv6 in the calling thread's
// namespace (call it inside Do); it is closed at the end of the test.
func NewSpoofer(t testing.TB, v6 bool) *Spoofer {
	t.Helper()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	// IPPROTO_RAW: the datagram carries its own IP header.
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &Spoofer{fd: fd, v6: v6}
}

// Send sends one UDP datagram from src to dst. A link-local dst needs its
// zone as an interface index (zone).
func (s *Spoofer) Send(src, dst netip.AddrPort, zone int, payload []byte) error {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	if !s.v6 {
		ip := make([]byte, 20, 20+len(udp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip[8] = 64 // TTL
		ip[9] = unix.IPPROTO_UDP
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(0, ip)) // the kernel fills it too
		// UDP checksum 0: none, which IPv4 allows.
		return unix.Sendto(s.fd, append(ip, udp...), 0, &unix.SockaddrInet4{Addr: d4})
	}
	ip := make([]byte, 40, 40+len(udp))
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	ip[6] = unix.IPPROTO_UDP
	ip[7] = 64 // hop limit
	s16, d16 := src.Addr().As16(), dst.Addr().As16()
	copy(ip[8:], s16[:])
	copy(ip[24:], d16[:])
	// IPv6 requires the UDP checksum, over a pseudo-header.
	var pseudo [40]byte
	copy(pseudo[0:], s16[:])
	copy(pseudo[16:], d16[:])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(udp)))
	pseudo[39] = unix.IPPROTO_UDP
	sum := checksum(checksum(0, pseudo[:])^0xffff, udp)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], sum)
	return unix.Sendto(s.fd, append(ip, udp...), 0, &unix.SockaddrInet6{Addr: d16, ZoneId: uint32(zone)})
}

// checksum continues the Internet checksum (RFC 1071) from the complement
// of an earlier result (0 to start) over b, and returns its complement.
func checksum(start uint16, b []byte) uint16 {
	sum := uint32(start)
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
