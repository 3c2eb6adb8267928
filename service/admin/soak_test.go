package admin_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/manager"
)

// TestSoak drives the whole stack below the daemon's main (admin API,
// manager, listeners) for UDPD_SOAK (default 3s; `make soak` runs 60s):
// closed-loop flows keep every datagram in flight answered as fast as
// they can, while a churn loop starts, rebinds and stops listeners over
// gRPC. Afterwards: every datagram received was answered or counted as a
// drop, the goroutines and file descriptors are back where they were, and
// nothing panicked (a panic fails the test binary).
func TestSoak(t *testing.T) {
	d := 3 * time.Second
	if s := os.Getenv("UDPD_SOAK"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			t.Fatalf("UDPD_SOAK=%q: %v", s, err)
		}
	}
	e := newEnv(t, manager.Options{Workers: 2})
	// Warm up the client connection so it is part of the baseline.
	if _, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	const stable, flowsEach = 2, 3
	type target struct {
		addr atomic.Pointer[netip.AddrPort]
	}
	targets := make([]*target, stable)
	for i := range targets {
		l := e.start(t, &adminv1.StartListenerRequest{Id: fmt.Sprintf("stable-%d", i), Address: "127.0.0.1:0"})
		a := boundAddr(t, l)
		targets[i] = &target{}
		targets[i].addr.Store(&a)
	}

	deadline := time.Now().Add(d)
	var sent, answered atomic.Uint64
	var wg sync.WaitGroup
	for i := range stable * flowsEach {
		tg := targets[i%stable]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			msg := []byte(fmt.Sprintf("soak flow %d ünïcödé", i))
			buf := make([]byte, 256)
			for time.Now().Before(deadline) {
				c.WriteToUDPAddrPort(msg, *tg.addr.Load())
				sent.Add(1)
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, _, err := c.ReadFromUDPAddrPort(buf); err == nil {
					answered.Add(1)
				}
			}
		}()
	}

	// Churn over the real API until the deadline.
	var churns int
	hosts := []string{"127.0.0.2:0", "127.0.0.1:0"}
	for time.Now().Before(deadline) {
		id := fmt.Sprintf("churn-%d", churns%5)
		if _, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: id, Address: "127.0.0.1:0"}); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		if _, err := e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: id, Address: "127.0.0.3:0", DrainTimeout: durationpb.New(100 * time.Millisecond)}); err != nil {
			t.Fatalf("rebind %s: %v", id, err)
		}
		if churns%3 == 0 {
			tg := targets[churns%stable]
			l, err := e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{
				Id: fmt.Sprintf("stable-%d", churns%stable), Address: hosts[churns/stable%2], DrainTimeout: durationpb.New(time.Second)})
			if err != nil {
				t.Fatalf("rebind stable: %v", err)
			}
			a := boundAddr(t, l.GetListener())
			tg.addr.Store(&a)
		}
		if _, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: id, DrainTimeout: durationpb.New(100 * time.Millisecond)}); err != nil {
			t.Fatalf("stop %s: %v", id, err)
		}
		churns++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()

	// Counters settle just after the last replies leave.
	var resp *adminv1.GetStatsResponse
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		resp, err = e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotal().GetDatagramsSent() >= answered.Load() || time.Now().After(end) {
			break
		}
	}
	tot := resp.GetTotal()
	drops := tot.GetRepliesTooLarge() + tot.GetSendErrors() + tot.GetLoopBlocked() + tot.GetRateLimited()
	if tot.GetDatagramsReceived() != tot.GetDatagramsSent()+drops {
		t.Errorf("totals inconsistent: received %d != sent %d + dropped %d", tot.GetDatagramsReceived(), tot.GetDatagramsSent(), drops)
	}
	if drops != 0 {
		t.Errorf("%d datagrams dropped (stats %v); none of this traffic should be", drops, tot)
	}

	for i := range stable {
		if _, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: fmt.Sprintf("stable-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var g, fds int
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		runtime.GC()
		g, fds = runtime.NumGoroutine(), openFDs(t)
		if (g <= baseG && fds <= baseFD) || time.Now().After(end) {
			break
		}
	}
	if g > baseG || fds > baseFD {
		t.Errorf("leak: goroutines %d → %d, fds %d → %d", baseG, g, baseFD, fds)
	}
	t.Logf("soak %v: %d sent, %d answered (%.0f/s), %d received, %d churn rounds; goroutines %d→%d, fds %d→%d",
		d, sent.Load(), answered.Load(), float64(answered.Load())/d.Seconds(), tot.GetDatagramsReceived(), churns, baseG, g, baseFD, fds)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}
