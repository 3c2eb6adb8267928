// Package udptest holds the UDP probes that several packages' tests use to
// check what a listener answers: one datagram out, its reply (or none)
// back, on a connected socket with a deadline. It is for tests only.
package udptest

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Echo sends msg to addr once and returns the reply, or an error if none
// came within 2 s.
func Echo(addr netip.AddrPort, msg string) (string, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 1<<16)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// MustEcho checks that addr answers an ASCII msg with its uppercase.
func MustEcho(t testing.TB, addr netip.AddrPort, msg string) {
	t.Helper()
	got, err := Echo(addr, msg)
	if err != nil {
		t.Fatalf("no reply from %v: %v", addr, err)
	}
	if want := strings.ToUpper(msg); got != want {
		t.Fatalf("reply from %v: got %q, want %q", addr, got, want)
	}
}

// MustNotEcho checks that nothing answers on addr: the datagram is refused
// (ICMP port unreachable) or no reply comes within a short wait.
func MustNotEcho(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte("anyone there")); err != nil {
		return // refused at once
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("%v answered %q, want no answer", addr, buf[:n])
	}
}
