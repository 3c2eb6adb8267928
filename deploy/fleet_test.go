//go:build linux

package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The fleet's addresses, all in documentation ranges and inside the
// namespaces the test makes: the client is 198.51.100.2 behind the router
// at 198.51.100.1; host i (1..3) is 198.51.100.(4i+2) behind the router's
// 198.51.100.(4i+1); every host owns the anycast address on its loopback.
const (
	hosts      = 3
	clientAddr = "198.51.100.2"
	routerAddr = "198.51.100.1"
	vip        = "203.0.113.10"
	vipPort    = 5301 // a listener bound to the anycast address
	wildPort   = 5302 // a wildcard listener (0.0.0.0), replying from the address asked
)

func hostAddr(i int) string   { return fmt.Sprintf("198.51.100.%d", 4*i+2) }
func routerSide(i int) string { return fmt.Sprintf("198.51.100.%d", 4*i+1) }

// TestFleet is the anycast fleet: three hosts, each a network namespace
// running udpd and owning the same address on its loopback; a router
// namespace with an ECMP route to that address over the three, hashed on
// layer 4 (fib_multipath_hash_policy=1); a client namespace. One udpctl
// udpctl apply through named contexts configures all three daemons. Many
// client flows reach the anycast address, spread over the hosts, and every
// reply comes from that address, for a listener bound to it and for a
// wildcard one. Then one host's udpd gets SIGTERM; a health checker (as an
// anycast router's would) withdraws that host's route when udpd reports
// NOT_SERVING, which it does at once while it goes on answering for
// --shutdown-delay: no datagram is lost, not even one in flight.
//
// It runs with make fleet-test (UDPD_FLEET=1), as root.
func TestFleet(t *testing.T) {
	if os.Getenv("UDPD_FLEET") == "" {
		t.Skip("the anycast fleet test runs with make fleet-test (UDPD_FLEET=1)")
	}
	f := newFleet(t)
	f.build()
	f.network()
	for i := 1; i <= hosts; i++ {
		f.startDaemon(i)
	}
	f.configure()

	const flows, rounds = 60, 10
	conns := f.clientConns(flows)
	for _, port := range []int{vipPort, wildPort} {
		name := map[int]string{vipPort: "vip", wildPort: "wild"}[port]
		dst := netip.AddrPortFrom(netip.MustParseAddr(vip), uint16(port))
		onHost := f.flowHosts(conns, port)
		checked := spread(t, conns, dst, rounds)
		recv := f.received(name)
		used := 0
		for i := 1; i <= hosts; i++ {
			n := 0
			for _, h := range onHost {
				if h == i {
					n++
				}
			}
			t.Logf("listener %s (%s): host h%d: %d flows (by the router's hash), %d datagrams received", name, dst, i, n, recv[i])
			if recv[i] != uint64(n*rounds) {
				t.Errorf("listener %s: h%d received %d datagrams, want %d (%d flows × %d)", name, i, recv[i], n*rounds, n, rounds)
			}
			if n > 0 {
				used++
			}
		}
		t.Logf("listener %s: %d replies checked, all from %s", name, checked, dst)
		if used < 2 {
			t.Errorf("listener %s: the %d flows reached %d host(s), want at least 2", name, flows, used)
		}
	}
	if t.Failed() {
		return
	}
	f.stopHost(conns, 1)
}

type fleet struct {
	t         *testing.T
	dir, bin  string
	client    string
	router    string
	hosts     [hosts + 1]string // hosts[1..3]
	daemons   [hosts + 1]*exec.Cmd
	exited    [hosts + 1]chan error
	sockets   [hosts + 1]string
	daemonLog [hosts + 1]*bytes.Buffer
}

// newFleet makes the namespaces, with names unique to this run, and
// removes them when the test ends, whatever happens.
func newFleet(t *testing.T) *fleet {
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "no ip command (Debian package iproute2)")
	}
	removeStale(t)
	suffix := make([]byte, 3)
	rand.Read(suffix)
	prefix := fmt.Sprintf("udpd-fleet-%d-%s", os.Getpid(), hex.EncodeToString(suffix))
	f := &fleet{t: t, dir: t.TempDir(), client: prefix + "-client", router: prefix + "-router"}
	for i := 1; i <= hosts; i++ {
		f.hosts[i] = fmt.Sprintf("%s-h%d", prefix, i)
	}
	for i, ns := range append([]string{f.client, f.router}, f.hosts[1:]...) {
		out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
		if err != nil {
			if i == 0 {
				skipOrFail(t, fmt.Sprintf("cannot create a network namespace (root needed): %v: %s", err, out))
			}
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	return f
}

var staleName = regexp.MustCompile(`^udpd-fleet-(\d+)-[0-9a-f]+-\w+$`)

// removeStale deletes the namespaces of earlier runs whose process is
// gone: a run killed by a timeout has no chance to clean up.
func removeStale(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleName.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", f[0]).CombinedOutput(); err != nil {
			t.Logf("removing stale namespace %s: %v: %s", f[0], err, out)
		}
	}
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// build compiles udpd and udpctl: the fleet runs them as real processes.
func (f *fleet) build() {
	f.bin = filepath.Join(f.dir, "bin")
	out, err := exec.Command("go", "build", "-o", f.bin+"/", "../cmd/udpd", "../cmd/udpctl").CombinedOutput()
	if err != nil {
		f.t.Fatalf("go build: %v\n%s", err, out)
	}
}

func (f *fleet) ip(args ...string) {
	f.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		f.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (f *fleet) sysctl(ns string, kv ...string) {
	f.t.Helper()
	f.ip(append([]string{"netns", "exec", ns, "sysctl", "-qw"}, kv...)...)
}

// network wires client - router - hosts with veth pairs and gives every
// host the anycast address; the router reaches it over all three.
func (f *fleet) network() {
	for _, ns := range append([]string{f.client, f.router}, f.hosts[1:]...) {
		f.ip("-n", ns, "link", "set", "lo", "up")
		f.sysctl(ns, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	}
	f.sysctl(f.router, "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")

	f.ip("link", "add", "to-router", "netns", f.client, "type", "veth", "peer", "name", "to-client", "netns", f.router)
	f.ip("-n", f.client, "addr", "add", clientAddr+"/30", "dev", "to-router")
	f.ip("-n", f.router, "addr", "add", routerAddr+"/30", "dev", "to-client")
	f.ip("-n", f.client, "link", "set", "to-router", "up")
	f.ip("-n", f.router, "link", "set", "to-client", "up")
	f.ip("-n", f.client, "route", "add", "default", "via", routerAddr)

	route := []string{"-n", f.router, "route", "add", vip + "/32"}
	for i := 1; i <= hosts; i++ {
		h, dev := f.hosts[i], fmt.Sprintf("to-h%d", i)
		f.ip("link", "add", "to-router", "netns", h, "type", "veth", "peer", "name", dev, "netns", f.router)
		f.ip("-n", h, "addr", "add", hostAddr(i)+"/30", "dev", "to-router")
		f.ip("-n", f.router, "addr", "add", routerSide(i)+"/30", "dev", dev)
		f.ip("-n", h, "link", "set", "to-router", "up")
		f.ip("-n", f.router, "link", "set", dev, "up")
		f.ip("-n", h, "addr", "add", vip+"/32", "dev", "lo")
		f.ip("-n", h, "route", "add", "default", "via", routerSide(i))
		route = append(route, "nexthop", "via", hostAddr(i), "dev", dev)
	}
	f.ip(route...)
}

// startDaemon runs udpd in host i's namespace with its admin API on a unix
// socket (reachable from here: the file system is shared) and waits until
// it is ready.
func (f *fleet) startDaemon(i int) {
	f.t.Helper()
	f.sockets[i] = filepath.Join(f.dir, fmt.Sprintf("h%d.sock", i))
	ready := filepath.Join(f.dir, fmt.Sprintf("h%d.ready", i))
	cmd := exec.Command("ip", "netns", "exec", f.hosts[i], filepath.Join(f.bin, "udpd"),
		"--listen", "127.0.0.1:0", "--admin", "unix://"+f.sockets[i], "--state", "",
		"--ready-file", ready, "--shutdown-timeout", "5s", "--shutdown-delay", "3s")
	f.daemonLog[i] = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = f.daemonLog[i], f.daemonLog[i]
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.daemons[i] = cmd
	f.exited[i] = make(chan error, 1)
	go func() { f.exited[i] <- cmd.Wait() }()
	f.t.Cleanup(func() {
		cmd.Process.Kill()
		<-f.exited[i]
		if f.t.Failed() {
			f.t.Logf("udpd on h%d:\n%s", i, f.daemonLog[i])
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case err := <-f.exited[i]:
			f.exited[i] <- err
			f.t.Fatalf("udpd on h%d exited before it was ready: %v\n%s", i, err, f.daemonLog[i])
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("udpd on h%d not ready after 20s", i)
		}
	}
}

// udpctl runs udpctl with the fleet's contexts file and returns its
// stdout; a non-zero exit fails the test.
func (f *fleet) udpctl(args ...string) []byte {
	f.t.Helper()
	return f.udpctlExit(0, args...)
}

// udpctlExit is udpctl for a command that should exit with code want.
func (f *fleet) udpctlExit(want int, args ...string) []byte {
	f.t.Helper()
	cfg := filepath.Join(f.dir, "udpctl.yaml")
	if _, err := os.Stat(cfg); err != nil {
		var b strings.Builder
		b.WriteString("contexts:\n")
		for i := 1; i <= hosts; i++ {
			fmt.Fprintf(&b, "  - name: h%d\n    admin: unix://%s\n", i, f.sockets[i])
		}
		if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
			f.t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(f.bin, "udpctl"), args...)
	cmd.Env = append(os.Environ(), "UDPCTL_CONFIG="+cfg, "UDPCTL_ADMIN=", "UDPCTL_CONTEXT=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	if code != want {
		f.t.Fatalf("udpctl %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, stderr.Bytes())
	}
	return out
}

// allHosts is the --context value that names every host.
func allHosts() string {
	names := make([]string, hosts)
	for i := range names {
		names[i] = fmt.Sprintf("h%d", i+1)
	}
	return strings.Join(names, ",")
}

// configure has every host run the same two listeners, with one udpctl
// apply through the contexts: exit 3 (changed) and a "+" line per
// listener and host; a second apply changes nothing anywhere (exit 0).
func (f *fleet) configure() {
	file := filepath.Join(f.dir, "fleet.yaml")
	conf := fmt.Sprintf("listeners:\n  - id: vip\n    address: %s:%d\n  - id: wild\n    address: 0.0.0.0:%d\n", vip, vipPort, wildPort)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		f.t.Fatal(err)
	}
	out := f.udpctlExit(3, "--context", allHosts(), "apply", "-f", file)
	for i := 1; i <= hosts; i++ {
		for _, want := range []string{
			fmt.Sprintf(`(?m)^h%d: \+ vip +address=%s:%d\b`, i, regexp.QuoteMeta(vip), vipPort),
			fmt.Sprintf(`(?m)^h%d: \+ wild +address=0\.0\.0\.0:%d\b`, i, wildPort),
		} {
			if !regexp.MustCompile(want).Match(out) {
				f.t.Fatalf("udpctl apply: no line matching %q in\n%s", want, out)
			}
		}
	}
	out = f.udpctlExit(0, "--context", allHosts(), "apply", "-f", file)
	if n := strings.Count(string(out), ": no changes\n"); n != hosts {
		f.t.Fatalf("udpctl apply again: %d daemons say no changes, want %d:\n%s", n, hosts, out)
	}
	out = f.udpctl("--context", allHosts(), "listeners", "list")
	for i := 1; i <= hosts; i++ {
		for _, want := range []string{
			fmt.Sprintf(`(?m)^h%d +vip +%s:%d +%s:%d +running `, i, regexp.QuoteMeta(vip), vipPort, regexp.QuoteMeta(vip), vipPort),
			fmt.Sprintf(`(?m)^h%d +wild +0\.0\.0\.0:%d +0\.0\.0\.0:%d +running `, i, wildPort, wildPort),
		} {
			if !regexp.MustCompile(want).Match(out) {
				f.t.Fatalf("udpctl listeners list: no row matching %q in\n%s", want, out)
			}
		}
	}
}

// received is each host's datagrams_received for listener id.
func (f *fleet) received(id string) map[int]uint64 {
	f.t.Helper()
	out := f.udpctl("--context", allHosts(), "stats", id, "-o", "json")
	got := map[int]uint64{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var doc struct {
			Context   string `json:"context"`
			Listeners []struct {
				Stats struct {
					DatagramsReceived string `json:"datagramsReceived"`
				} `json:"stats"`
			} `json:"listeners"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || len(doc.Listeners) != 1 {
			f.t.Fatalf("udpctl stats -o json: %v, %d listeners in\n%s", err, len(doc.Listeners), out)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(doc.Context, "h"))
		if err != nil {
			f.t.Fatalf("udpctl stats -o json: context %q", doc.Context)
		}
		n, _ := strconv.ParseUint(doc.Listeners[0].Stats.DatagramsReceived, 10, 64)
		got[i] = n
	}
	if len(got) != hosts {
		f.t.Fatalf("udpctl stats: %d daemons answered, want %d:\n%s", len(got), hosts, out)
	}
	return got
}

var viaHost = regexp.MustCompile(`via 198\.51\.100\.(\d+) `)

// flowHosts asks the router which host each flow to port hashes to.
func (f *fleet) flowHosts(conns []*net.UDPConn, port int) []int {
	f.t.Helper()
	hostOf := make([]int, len(conns))
	for k, c := range conns {
		sport := strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
		out, err := exec.Command("ip", "-n", f.router, "route", "get", vip, "from", clientAddr, "iif", "to-client",
			"ipproto", "udp", "sport", sport, "dport", strconv.Itoa(port)).CombinedOutput()
		m := viaHost.FindSubmatch(out)
		if err != nil || m == nil {
			f.t.Fatalf("ip route get for flow %d: %v: %s", k, err, out)
		}
		last, _ := strconv.Atoi(string(m[1]))
		hostOf[k] = (last - 2) / 4
	}
	return hostOf
}

// clientConns opens n UDP sockets in the client namespace, each one flow.
// The sockets are made on a thread moved into that namespace and keep
// working after the thread moves back.
func (f *fleet) clientConns(n int) []*net.UDPConn {
	f.t.Helper()
	var conns []*net.UDPConn
	err := inNetns(f.client, func() error {
		for range n {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(clientAddr)})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	})
	for _, c := range conns {
		f.t.Cleanup(func() { c.Close() })
	}
	if err != nil {
		f.t.Fatalf("client sockets: %v", err)
	}
	return conns
}

// inNetns runs fn on an OS thread in the named network namespace.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// If the thread cannot return to its namespace it stays locked,
		// and the runtime ends it with this goroutine.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		err = fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// spread sends rounds datagrams on every flow, one at a time, and checks
// each reply: from dst, the uppercase of the request. It returns the
// number of replies checked.
func spread(t *testing.T, conns []*net.UDPConn, dst netip.AddrPort, rounds int) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := 0
	for k, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 512)
			for seq := range rounds {
				req := fmt.Sprintf("flow-%03d-seq-%04d", k, seq)
				reply, from, err := roundTrip(c, buf, dst, req, 5*time.Second)
				if err != nil {
					t.Errorf("flow %d to %s: %v", k, dst, err)
					return
				}
				if from != dst || reply != strings.ToUpper(req) {
					t.Errorf("flow %d: reply %q from %s, want %q from %s", k, reply, from, strings.ToUpper(req), dst)
					return
				}
				mu.Lock()
				checked++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return checked
}

// roundTrip sends req to dst and waits up to timeout for a reply to it;
// replies to earlier requests are skipped.
func roundTrip(c *net.UDPConn, buf []byte, dst netip.AddrPort, req string, timeout time.Duration) (string, netip.AddrPort, error) {
	if _, err := c.WriteToUDPAddrPort([]byte(req), dst); err != nil {
		return "", netip.AddrPort{}, err
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	want := strings.ToUpper(req)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return "", from, err
		}
		// A reply from another address is returned, to be reported.
		if got := string(buf[:n]); got == want || from != dst {
			return got, from, nil
		}
	}
}

// datagram is one request of the stop phase.
type datagram struct {
	flow     int
	sent     time.Time
	answered bool
}

// stopHost keeps every flow busy (one datagram in flight each) while host
// i's udpd gets SIGTERM. A health checker withdraws the host's route when
// udpd reports NOT_SERVING, as an anycast router's checker would. The
// host answers on for --shutdown-delay, so every datagram is answered:
// without the delay, each flow that hashed to the stopped host lost the
// one it had in flight.
func (f *fleet) stopHost(conns []*net.UDPConn, stop int) {
	t := f.t
	t.Helper()
	onHost := f.flowHosts(conns, vipPort)
	flowsOnStopped := 0
	for _, h := range onHost {
		if h == stop {
			flowsOnStopped++
		}
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr(vip), vipPort)

	withdrawn := make(chan time.Time, 1)
	watching := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go f.healthChecker(ctx, stop, watching, withdrawn)
	select {
	case <-watching:
	case <-ctx.Done():
		t.Fatal("the health checker never saw SERVING")
	}

	var mu sync.Mutex
	var all []datagram
	var wrong []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	const maxPerFlow = 20000 // bounds the loop whatever the timing
	for k, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 512)
			for seq := 0; seq < maxPerFlow; seq++ {
				select {
				case <-done:
					return
				default:
				}
				req := fmt.Sprintf("stop-%03d-%06d", k, seq)
				d := datagram{flow: k, sent: time.Now()}
				reply, from, err := roundTrip(c, buf, dst, req, time.Second)
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
				case err != nil:
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("flow %d: %v", k, err))
					mu.Unlock()
					return
				case from != dst || reply != strings.ToUpper(req):
					mu.Lock()
					wrong = append(wrong, fmt.Sprintf("flow %d: reply %q from %s", k, reply, from))
					mu.Unlock()
				default:
					d.answered = true
				}
				mu.Lock()
				all = append(all, d)
				mu.Unlock()
			}
		})
	}

	time.Sleep(500 * time.Millisecond) // traffic before the stop
	signalled := time.Now()
	if err := f.daemons[stop].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var at time.Time
	select {
	case at = <-withdrawn:
	case <-time.After(20 * time.Second):
		close(done)
		wg.Wait()
		t.Fatal("the route was not withdrawn 20s after SIGTERM")
	}
	select {
	case err := <-f.exited[stop]:
		f.exited[stop] <- err
		if err != nil {
			t.Errorf("udpd on h%d after SIGTERM: %v", stop, err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("udpd on h%d still running 20s after SIGTERM", stop)
	}
	time.Sleep(1500 * time.Millisecond) // traffic after the withdrawal
	close(done)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, w := range wrong {
		t.Error(w)
	}
	var answered, lost, after, movedAnswered int
	lostPerFlow := map[int]int{}
	for _, d := range all {
		switch {
		case d.answered:
			answered++
			if onHost[d.flow] == stop && d.sent.After(at) {
				movedAnswered++
			}
		default:
			lost++
			lostPerFlow[d.flow]++
			if onHost[d.flow] != stop {
				t.Errorf("flow %d (on h%d, not stopped) lost a datagram sent at %v", d.flow, onHost[d.flow], d.sent.Sub(signalled))
			}
			if d.sent.After(at) {
				after++
			}
		}
	}
	t.Logf("host stop: h%d had %d of %d flows; %d datagrams answered, %d lost (at most %d in flight), "+
		"route withdrawn %v after SIGTERM; %d datagrams of the moved flows answered by the other hosts",
		stop, flowsOnStopped, len(conns), answered, lost, flowsOnStopped, at.Sub(signalled).Round(time.Millisecond), movedAnswered)
	// With --shutdown-delay, the stopped host answers until well after its
	// route is withdrawn (milliseconds after NOT_SERVING): nothing is lost,
	// not even what was in flight.
	if lost > 0 {
		t.Errorf("%d datagrams lost (%d sent after the route was withdrawn; per flow: %v): with --shutdown-delay, none may be", lost, after, lostPerFlow)
	}
	if flowsOnStopped > 0 && movedAnswered == 0 {
		t.Errorf("the flows of h%d got no answer after the withdrawal", stop)
	}
}

// healthChecker watches host i's grpc.health.v1 status, as an anycast
// router's health checker would, and withdraws the host's ECMP next hop
// once it is no longer SERVING. It closes watching once it saw SERVING and
// sends the time of the withdrawal.
func (f *fleet) healthChecker(ctx context.Context, i int, watching chan<- struct{}, withdrawn chan<- time.Time) {
	conn, err := grpc.NewClient("unix://"+f.sockets[i], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Errorf("health checker: %v", err)
		return
	}
	defer conn.Close()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		f.t.Errorf("health checker: %v", err)
		return
	}
	seen := false
	for {
		resp, err := stream.Recv()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			if !seen {
				seen = true
				close(watching)
			}
			continue
		}
		// NOT_SERVING, or the daemon is gone: withdraw the route.
		args := []string{"-n", f.router, "route", "replace", vip + "/32"}
		for h := 1; h <= hosts; h++ {
			if h != i {
				args = append(args, "nexthop", "via", hostAddr(h), "dev", fmt.Sprintf("to-h%d", h))
			}
		}
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			f.t.Errorf("withdraw h%d: %v: %s", i, err, out)
		}
		withdrawn <- time.Now()
		return
	}
}
