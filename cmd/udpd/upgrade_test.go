//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// startUpgradable starts bin with two listeners and returns the command,
// its stderr, the admin connection and the listeners' addresses.
func startUpgradable(t *testing.T, bin, dir string) (*exec.Cmd, logFile, *daemonConn, []netip.AddrPort) {
	t.Helper()
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--metrics", "127.0.0.1:0", "--state", filepath.Join(dir, "state.json"), "--ready-file", ready,
		"--workers", "2", "--log-level", "warn")
	stderr := logFile(filepath.Join(dir, "stderr"))
	f, err := os.Create(string(stderr))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := connect(t, ready, stderr)
	_, ls, _ := readyFile(ready)
	var addrs []netip.AddrPort
	for _, a := range ls {
		addrs = append(addrs, netip.MustParseAddrPort(a))
	}
	if len(addrs) != 2 {
		t.Fatalf("ready file lists %d listeners, want 2", len(addrs))
	}
	return cmd, stderr, d, addrs
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// stopProcess ends a udpd this test did not start itself (one an upgrade
// started) at the end of the test.
func stopProcess(t *testing.T, pid *atomic.Int64) {
	t.Cleanup(func() {
		p := int(pid.Load())
		if p == 0 {
			return
		}
		syscall.Kill(p, syscall.SIGTERM)
		for deadline := time.Now().Add(10 * time.Second); alive(p) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		}
		if alive(p) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
}

// loadClient sends numbered datagrams in a closed loop (one in flight at a
// time) on its own connected socket and keeps count.
type loadClient struct {
	conn *net.UDPConn

	mu         sync.Mutex
	seq        uint64 // the datagram in flight, when inFlight
	inFlight   bool
	sent       uint64
	answered   uint64
	refused    uint64   // ECONNREFUSED (an ICMP port unreachable came back)
	unanswered []uint64 // seqs given up on after replyTimeout
}

const replyTimeout = 2 * time.Second

func (c *loadClient) run(stop <-chan struct{}, until time.Time) {
	buf := make([]byte, 64)
	var msg, want []byte
	for seq := uint64(1); seq <= 1_000_000 && time.Now().Before(until); seq++ {
		select {
		case <-stop:
			return
		default:
		}
		// Digits, so that the reply is the request but for the letters.
		msg = fmt.Appendf(msg[:0], "%020d datagram", seq)
		want = fmt.Appendf(want[:0], "%020d DATAGRAM", seq)
		c.mu.Lock()
		c.seq, c.inFlight = seq, true
		c.sent++
		c.mu.Unlock()
		if _, err := c.conn.Write(msg); err != nil {
			c.mu.Lock()
			c.inFlight = false
			if errors.Is(err, syscall.ECONNREFUSED) {
				c.refused++
			} else {
				c.unanswered = append(c.unanswered, seq)
			}
			c.mu.Unlock()
			continue
		}
		c.conn.SetReadDeadline(time.Now().Add(replyTimeout))
		for {
			n, err := c.conn.Read(buf)
			c.mu.Lock()
			switch {
			case err != nil && errors.Is(err, syscall.ECONNREFUSED):
				c.refused++
				c.inFlight = false
			case err != nil:
				c.unanswered = append(c.unanswered, seq)
				c.inFlight = false
			case bytes.Equal(buf[:n], want):
				c.answered++
				c.inFlight = false
			default:
				// A late answer to a datagram given up on: keep reading.
			}
			done := !c.inFlight
			c.mu.Unlock()
			if done {
				break
			}
		}
	}
}

// flight is one client's datagram in flight at a named moment.
type flight struct {
	client int
	seq    uint64
}

func inFlight(cs []*loadClient) map[flight]bool {
	m := map[flight]bool{}
	for i, c := range cs {
		c.mu.Lock()
		if c.inFlight {
			m[flight{i, c.seq}] = true
		}
		c.mu.Unlock()
	}
	return m
}

func answered(cs []*loadClient) uint64 {
	var n uint64
	for _, c := range cs {
		c.mu.Lock()
		n += c.answered
		c.mu.Unlock()
	}
	return n
}

// waitAnswered waits (boundedly) until the clients have n more answers.
func waitAnswered(t *testing.T, cs []*loadClient, n uint64) {
	t.Helper()
	want := answered(cs) + n
	for deadline := time.Now().Add(10 * time.Second); answered(cs) < want; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("load stalled: %d answers, want %d", answered(cs), want)
		}
	}
}

func startLoad(t *testing.T, addrs []netip.AddrPort, perListener int) ([]*loadClient, func()) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var cs []*loadClient
	until := time.Now().Add(40 * time.Second)
	for _, a := range addrs {
		for range perListener {
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(a))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			c := &loadClient{conn: conn}
			cs = append(cs, c)
			wg.Go(func() { c.run(stop, until) })
		}
	}
	return cs, func() { close(stop); wg.Wait() }
}

func listenersOf(t *testing.T, d *daemonConn) []*adminv1.Listener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := d.client.ListListeners(ctx, &adminv1.ListListenersRequest{})
	if err != nil {
		t.Fatalf("ListListeners: %v", err)
	}
	return resp.GetListeners()
}

func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			return i.GetReason()
		}
	}
	return ""
}

// TestUpgradeUnderLoadLosesNothing upgrades udpd five times (the same
// binary) while closed-loop clients load both of its listeners, and
// counts: every datagram sent is answered, or was in flight at a named
// moment (the instant an Upgrade call returned, when the old process had
// stopped reading); none is refused. The counters, ids and generations
// carry over, and a WatchStats stream ends with UNAVAILABLE (UPGRADING).
func TestUpgradeUnderLoadLosesNothing(t *testing.T) {
	bin := udpdBinary(t)
	dir := t.TempDir()
	cmd, stderr, d, addrs := startUpgradable(t, bin, dir)
	var lastPid atomic.Int64
	stopProcess(t, &lastPid)
	before := listenersOf(t, d)

	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	watch, err := d.client.WatchStats(wctx, &adminv1.WatchStatsRequest{Interval: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	cs, stopLoad := startLoad(t, addrs, 3)
	waitAnswered(t, cs, 2000)
	daemon := adminv1.NewDaemonServiceClient(d.conn)
	pid := cmd.Process.Pid
	type upgrade struct {
		oldPid, newPid int
		readyAfter     time.Duration // as udpd measured it
		call           time.Duration // the whole call, as the client saw it
		inFlight       map[flight]bool
	}
	var ups []upgrade
	for i := range 5 {
		begin := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		resp, err := daemon.Upgrade(ctx, &adminv1.UpgradeRequest{})
		cancel()
		if err != nil {
			t.Fatalf("upgrade %d: %v\nudpd's stderr:\n%s", i+1, err, stderr)
		}
		// The named moment: the call returned; the old process had
		// stopped reading and handed over.
		fl := inFlight(cs)
		ups = append(ups, upgrade{int(resp.GetOldPid()), int(resp.GetNewPid()), resp.GetReadyAfter().AsDuration(), time.Since(begin), fl})
		lastPid.Store(int64(resp.GetNewPid()))
		if int(resp.GetOldPid()) != pid || int(resp.GetNewPid()) == pid || resp.GetListeners() != 2 {
			t.Fatalf("upgrade %d: %v; want old pid %d, a new pid, 2 listeners", i+1, resp, pid)
		}
		// The old process exits (the first one with status 0).
		for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("upgrade %d: old udpd (pid %d) still running", i+1, pid)
			}
		}
		if i == 0 {
			if err := cmd.Wait(); err != nil {
				t.Errorf("the first udpd exited with %v after handing over, want status 0", err)
			}
			_, err := watch.Recv()
			for err == nil {
				_, err = watch.Recv()
			}
			if status.Code(err) != codes.Unavailable || reasonOf(err) != "UPGRADING" {
				t.Errorf("WatchStats across an upgrade ended with %v (reason %q), want UNAVAILABLE, UPGRADING", err, reasonOf(err))
			}
		}
		pid = int(resp.GetNewPid())
		waitAnswered(t, cs, 2000)
	}
	stopLoad()

	var sent, got, refused uint64
	var lost []flight
	for i, c := range cs {
		sent += c.sent
		got += c.answered
		refused += c.refused
		for _, seq := range c.unanswered {
			lost = append(lost, flight{i, seq})
		}
	}
	for _, f := range lost {
		named := false
		for _, u := range ups {
			named = named || u.inFlight[f]
		}
		if !named {
			t.Errorf("datagram %d of client %d was never answered and was in flight at no named moment", f.seq, f.client)
		}
	}
	if refused != 0 {
		t.Errorf("%d datagrams refused (ECONNREFUSED), want 0", refused)
	}
	t.Logf("datagrams sent %d, answered %d, unanswered %d, refused %d", sent, got, len(lost), refused)
	for i, u := range ups {
		t.Logf("upgrade %d: pid %d -> %d, in flight at the call's return %d, new process serving %v after the request (call %v)",
			i+1, u.oldPid, u.newPid, len(u.inFlight), u.readyAfter.Round(time.Microsecond), u.call.Round(time.Microsecond))
	}

	// Totals continued across five processes: the last one counted every
	// datagram the clients sent, and answered every one.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := d.client.GetStats(ctx, &adminv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	total := st.GetTotal()
	if total.GetDatagramsReceived() != sent-uint64(len(lost)) && total.GetDatagramsReceived() != sent {
		t.Errorf("udpd counted %d datagrams received, the clients sent %d", total.GetDatagramsReceived(), sent)
	}
	if total.GetDatagramsSent() != got {
		t.Errorf("udpd counted %d datagrams answered, the clients got %d", total.GetDatagramsSent(), got)
	}
	after := listenersOf(t, d)
	ignore := protocmp.IgnoreFields(&adminv1.Listener{}, "stats")
	if diff := cmp.Diff(before, after, protocmp.Transform(), ignore); diff != "" {
		t.Errorf("listeners changed across the upgrades (-before +after):\n%s", diff)
	}

	// The metrics listener was handed over too, with the totals.
	metricsAddr := ""
	if b, err := os.ReadFile(filepath.Join(dir, "ready")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if a, ok := strings.CutPrefix(line, "metrics "); ok {
				metricsAddr = a
			}
		}
	}
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics after the upgrades: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var scraped uint64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "udpd_datagrams_sent_total{") {
			var n float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
			scraped += uint64(n)
		}
	}
	if scraped != got {
		t.Errorf("metrics count %d datagrams sent, the clients got %d", scraped, got)
	}

	// So was the state file's lock: a second udpd on the same state file
	// is refused.
	out, err := exec.Command(bin, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--state", filepath.Join(dir, "state.json")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another udpd") {
		t.Errorf("a second udpd on the state file: %v\n%s\nwant it refused: the lock is held", err, out)
	}
}

// replaceBinary puts a shell script (or nothing) where udpd's binary was,
// as an operator installing a broken release would.
func replaceBinary(t *testing.T, path, script string) {
	t.Helper()
	tmp := path + ".new"
	if script == "" {
		os.Remove(path)
		return
	}
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tmp := to + ".new"
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeFailureKeepsServing installs broken binaries in udpd's place:
// one that fails to start, one that exits, one that crashes, one that is
// never ready. Each upgrade fails with FAILED_PRECONDITION (UPGRADE_FAILED)
// saying why, and the old udpd serves on as if nothing happened: nothing
// lost or refused under load, and listener changes work again. Then the
// real binary goes back and the upgrade succeeds.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "udpd")
	copyFile(t, udpdBinary(t), bin)
	cmd, stderr, d, addrs := startUpgradable(t, bin, dir)
	var lastPid atomic.Int64
	stopProcess(t, &lastPid)
	cs, stopLoad := startLoad(t, addrs, 1)
	waitAnswered(t, cs, 100)
	daemon := adminv1.NewDaemonServiceClient(d.conn)
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		want         string
	}{
		{"no binary", "", 0, "no such file or directory"},
		{"exits", "echo broken release >&2; exit 3", 0, "exited before it was ready (exit status 3)"},
		{"crashes", "kill -SEGV $$", 0, "exited before it was ready (signal: segmentation fault)"},
		{"never ready", "exec sleep 30", 500 * time.Millisecond, "was not ready within 500ms"},
	} {
		replaceBinary(t, bin, tc.script)
		req := &adminv1.UpgradeRequest{}
		if tc.timeout > 0 {
			req.Timeout = durationpb.New(tc.timeout)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := daemon.Upgrade(ctx, req)
		cancel()
		if status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "UPGRADE_FAILED" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Upgrade = %v (reason %q), want FAILED_PRECONDITION, UPGRADE_FAILED, saying %q", tc.name, err, reasonOf(err), tc.want)
		}
		// Still the same process, serving and accepting changes.
		waitAnswered(t, cs, 50)
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		l, err := d.client.StartListener(ctx, &adminv1.StartListenerRequest{Address: "127.0.0.1:0"})
		if err == nil {
			_, err = d.client.StopListener(ctx, &adminv1.StopListenerRequest{Id: l.GetListener().GetId()})
		}
		cancel()
		if err != nil {
			t.Errorf("%s: listener changes after the failed upgrade: %v", tc.name, err)
		}
	}
	if !alive(cmd.Process.Pid) {
		t.Fatalf("udpd died during the failed upgrades:\n%s", stderr)
	}

	copyFile(t, udpdBinary(t), bin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := daemon.Upgrade(ctx, &adminv1.UpgradeRequest{})
	if err != nil {
		t.Fatalf("upgrade with the real binary back: %v\n%s", err, stderr)
	}
	lastPid.Store(int64(resp.GetNewPid()))
	waitAnswered(t, cs, 100)
	stopLoad()
	for _, c := range cs {
		if c.refused != 0 || len(c.unanswered) != 0 {
			t.Errorf("client: %d refused, %d unanswered (of %d); want none", c.refused, len(c.unanswered), c.sent)
		}
	}
}
