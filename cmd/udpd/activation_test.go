//go:build unix

package main

import (
	"bytes"
	"context"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// udpSocket binds a UDP socket as systemd would for ListenDatagram=
// (with SO_REUSEPORT when several share the address, as ReusePort=yes).
func udpSocket(t *testing.T, addr string) *os.File {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	f, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// activate runs udpd as systemd runs a socket-activated service: the
// sockets at descriptors 3, 4, …, LISTEN_FDS and LISTEN_FDNAMES set, and
// LISTEN_PID the pid of udpd itself (the shell sets it, then execs udpd in
// its place, as systemd sets it between fork and exec).
func activate(t *testing.T, files []*os.File, names string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	bin := udpdBinary(t)
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin}, args...)...)
	cmd.Env = append(os.Environ(), "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+names)
	cmd.ExtraFiles = files
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stderr
}

func fileAddr(t *testing.T, f *os.File) netip.AddrPort {
	t.Helper()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestSocketActivation runs udpd with four activated sockets: two named
// "echo" on one address (one listener, two workers), one "echo" on
// another address (echo-2), one "other". Datagrams sent before udpd runs
// wait in the sockets and are answered, nothing else is bound (no default
// --listen), and the listeners are saved with their ids.
func TestSocketActivation(t *testing.T) {
	dir := t.TempDir()
	e1 := udpSocket(t, "127.0.0.1:0")
	echoAddr := fileAddr(t, e1)
	e2 := udpSocket(t, echoAddr.String())
	e3 := udpSocket(t, "127.0.0.1:0")
	o := udpSocket(t, "127.0.0.1:0")
	files := []*os.File{e1, e2, o, e3}
	echo2Addr, otherAddr := fileAddr(t, e3), fileAddr(t, o)

	// Sent before udpd starts: systemd holds the socket, the kernel queues.
	early, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(otherAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if _, err := early.Write([]byte("early bird")); err != nil {
		t.Fatal(err)
	}

	state := filepath.Join(dir, "state.json")
	ready := filepath.Join(dir, "ready")
	_, stderr := activate(t, files, "echo:echo:other:echo",
		"--admin", "127.0.0.1:0", "--state", state, "--ready-file", ready, "--log-level", "warn")
	for _, f := range files {
		f.Close() // udpd holds them now, as systemd does
	}
	d := connect(t, ready, stderr)

	early.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := early.Read(buf)
	if err != nil || string(buf[:n]) != "EARLY BIRD" {
		t.Fatalf("datagram sent before udpd started: reply %q, %v; want EARLY BIRD", buf[:n], err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := d.client.ListListeners(ctx, &adminv1.ListListenersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*adminv1.Listener{}
	for _, l := range resp.GetListeners() {
		got[l.GetId()] = l
	}
	want := map[string]struct {
		addr    netip.AddrPort
		workers uint32
	}{
		"echo":   {echoAddr, 2},
		"echo-2": {echo2Addr, 1},
		"other":  {otherAddr, 1},
	}
	if len(got) != len(want) {
		t.Errorf("listeners %v, want exactly echo, echo-2 and other", slices.Sorted(maps.Keys(got)))
	}
	for id, w := range want {
		l := got[id]
		if l == nil {
			t.Errorf("no listener %q", id)
			continue
		}
		if l.GetBoundAddress() != w.addr.String() || l.GetWorkers() != w.workers {
			t.Errorf("listener %q: %s with %d workers, want %s with %d", id, l.GetBoundAddress(), l.GetWorkers(), w.addr, w.workers)
		}
		if r, err := echo(w.addr, "hi "+id); err != nil || r != strings.ToUpper("hi "+id) {
			t.Errorf("listener %q answered %q, %v", id, r, err)
		}
	}
	saved, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if !strings.Contains(string(saved), `"id": "`+id+`"`) {
			t.Errorf("state file does not hold %q:\n%s", id, saved)
		}
	}
}

// TestSocketActivationRefusesBadNames: a socket whose name is not a
// listener id (systemd's default is the unit's name, "udpd.socket") stops
// udpd with a message that says what to set.
func TestSocketActivationRefusesBadNames(t *testing.T) {
	f := udpSocket(t, "127.0.0.1:0")
	cmd, stderr := activate(t, []*os.File{f}, "udpd.socket", "--admin", "127.0.0.1:0", "--state", "")
	f.Close()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("udpd exited with %v, want exit status 1; stderr:\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), `named "udpd.socket"`) || !strings.Contains(stderr.String(), "FileDescriptorName=") {
		t.Errorf("stderr does not say which name is wrong and what to set:\n%s", stderr)
	}
}
