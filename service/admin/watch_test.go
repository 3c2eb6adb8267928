package admin_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

// TestWatchStatsSharesReadings opens the most streams allowed (64), all
// at 100 ms, and reads 5 snapshots on each: they share the counter
// readings, so the snapshots carry at most one distinct time per 100 ms
// tick that passed (one reading each), not one per stream and snapshot.
func TestWatchStatsSharesReadings(t *testing.T) {
	e := newEnv(t, manager.Options{})
	for _, id := range []string{"a", "b", "c"} {
		e.start(t, &adminv1.StartListenerRequest{Id: id, Address: "127.0.0.1:0"})
	}
	begin := time.Now()
	var (
		mu    sync.Mutex
		times = map[time.Time]int{}
		wg    sync.WaitGroup
	)
	for i := range sampler.DefaultMaxWatchers {
		id := ""
		if i%2 == 1 {
			id = "b" // half of them watch one listener
		}
		stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{ListenerId: id, Interval: durationpb.New(100 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				resp, err := stream.Recv()
				if err != nil {
					t.Errorf("stream %d: %v", i, err)
					return
				}
				want := 3
				if id != "" {
					want = 1
				}
				if n := len(resp.GetListeners()); n != want {
					t.Errorf("stream %d (id %q): got %d listeners, want %d", i, id, n, want)
				}
				mu.Lock()
				times[resp.GetTime().AsTime()]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if ticks := int(elapsed/sampler.DefaultTick) + 1; len(times) > ticks {
		t.Errorf("64 streams × 5 snapshots in %v: got %d distinct readings, want at most one per 100 ms tick (%d)",
			elapsed, len(times), ticks)
	}
	total := 0
	for _, n := range times {
		total += n
	}
	if total != 64*5 {
		t.Errorf("snapshots received: got %d, want %d", total, 64*5)
	}
}

// TestWatchStatsLimit checks the cap on concurrent streams: by default
// the 65th gets RESOURCE_EXHAUSTED (WATCHER_QUOTA_EXCEEDED), and a place
// freed by a cancelled stream can be taken again.
func TestWatchStatsLimit(t *testing.T) {
	e := newEnv(t, manager.Options{})
	watch := func(c context.Context) (adminv1.ListenerService_WatchStatsClient, error) {
		stream, err := e.client.WatchStats(c, &adminv1.WatchStatsRequest{Interval: durationpb.New(time.Hour)})
		if err != nil {
			return nil, err
		}
		_, err = stream.Recv()
		return stream, err
	}
	var cancels []context.CancelFunc
	for i := range 64 {
		c, cancel := context.WithCancel(ctx(t))
		cancels = append(cancels, cancel)
		if _, err := watch(c); err != nil {
			t.Fatalf("stream %d of 64: %v", i+1, err)
		}
	}
	_, err := watch(ctx(t))
	wantStatus(t, err, codes.ResourceExhausted, "WATCHER_QUOTA_EXCEEDED")

	cancels[0]()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := watch(ctx(t))
		if err == nil {
			break
		}
		wantStatus(t, err, codes.ResourceExhausted, "WATCHER_QUOTA_EXCEEDED")
		if time.Now().After(deadline) {
			t.Fatal("a cancelled stream's place was not freed in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range cancels {
		c()
	}
}

// TestWatchStatsSamplerOption checks that a server given a sampler uses
// it: its cap and its readings.
func TestWatchStatsSamplerOption(t *testing.T) {
	m := manager.New(manager.Options{Workers: 1})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Shutdown(c)
	})
	smp := sampler.New(m, sampler.Options{MaxWatchers: 2})
	sctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go smp.Run(sctx)
	e := serve(t, m, admin.Options{Sampler: smp})
	var open []adminv1.ListenerService_WatchStatsClient
	for i := range 3 {
		stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{Interval: durationpb.New(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if i < 2 {
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			open = append(open, stream)
			continue
		}
		wantStatus(t, err, codes.ResourceExhausted, "WATCHER_QUOTA_EXCEEDED")
	}
	if n := smp.Watchers(); n != 2 {
		t.Errorf("the sampler's watchers: got %d, want 2", n)
	}
	// The sampler stopping ends the streams with UNAVAILABLE.
	cancel()
	for i, stream := range open {
		_, err := stream.Recv()
		wantStatus(t, err, codes.Unavailable, "SHUTTING_DOWN")
		if t.Failed() {
			t.Fatalf("stream %d after the sampler stopped", i)
		}
	}
}

// TestWatchStatsChangesOnly follows every listener with changes_only: the
// first message is complete; later ones hold only the listeners whose
// counters changed (none while nothing happens); starting or stopping a
// listener brings a complete message again. Applying the messages in
// order gives what GetStats says.
func TestWatchStatsChangesOnly(t *testing.T) {
	e := newEnv(t, manager.Options{})
	bound := map[string]netip.AddrPort{}
	for _, id := range []string{"a", "b", "c"} {
		bound[id] = boundAddr(t, e.start(t, &adminv1.StartListenerRequest{Id: id, Address: "127.0.0.1:0"}))
	}
	stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{Interval: durationpb.New(100 * time.Millisecond), ChangesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	view := map[string]*adminv1.Stats{}
	recv := func() *adminv1.WatchStatsResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if resp.GetComplete() {
			clear(view)
		}
		for _, l := range resp.GetListeners() {
			view[l.GetListenerId()] = l.GetStats()
		}
		return resp
	}
	ids := func(resp *adminv1.WatchStatsResponse) []string {
		var out []string
		for _, l := range resp.GetListeners() {
			out = append(out, l.GetListenerId())
		}
		return out
	}
	// next receives until want says so, for 5 s at most (50 ticks).
	next := func(what string, want func(*adminv1.WatchStatsResponse) bool) *adminv1.WatchStatsResponse {
		t.Helper()
		for range 50 {
			if resp := recv(); want(resp) {
				return resp
			}
		}
		t.Fatalf("no message with %s in 50", what)
		return nil
	}

	if first := recv(); !first.GetComplete() || !slices.Equal(ids(first), []string{"a", "b", "c"}) {
		t.Fatalf("first message: complete %v, listeners %v; want complete with a, b, c", first.GetComplete(), ids(first))
	}
	if second := recv(); second.GetComplete() || len(second.GetListeners()) != 0 {
		t.Errorf("second message, nothing changed: complete %v, listeners %v; want neither", second.GetComplete(), ids(second))
	}

	mustEcho(t, bound["b"], "only b")
	resp := next("b's datagram", func(r *adminv1.WatchStatsResponse) bool { return len(r.GetListeners()) > 0 })
	if resp.GetComplete() || !slices.Equal(ids(resp), []string{"b"}) || resp.GetListeners()[0].GetStats().GetDatagramsSent() != 1 {
		t.Errorf("after a datagram to b: complete %v, listeners %v; want b alone with 1 sent", resp.GetComplete(), resp.GetListeners())
	}
	if resp.GetTotal().GetDatagramsSent() != 1 {
		t.Errorf("total sent: got %d, want 1", resp.GetTotal().GetDatagramsSent())
	}

	e.start(t, &adminv1.StartListenerRequest{Id: "d", Address: "127.0.0.1:0"})
	resp = next("complete", (*adminv1.WatchStatsResponse).GetComplete)
	if !slices.Equal(ids(resp), []string{"a", "b", "c", "d"}) {
		t.Errorf("after starting d: listeners %v, want a, b, c, d", ids(resp))
	}
	if _, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a"}); err != nil {
		t.Fatal(err)
	}
	resp = next("complete", (*adminv1.WatchStatsResponse).GetComplete)
	if !slices.Equal(ids(resp), []string{"b", "c", "d"}) {
		t.Errorf("after stopping a: listeners %v, want b, c, d", ids(resp))
	}

	mustEcho(t, bound["c"], "then c")
	next("c's datagram", func(r *adminv1.WatchStatsResponse) bool { return view["c"].GetDatagramsSent() == 1 })
	got, err := e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*adminv1.Stats{}
	for _, l := range got.GetListeners() {
		want[l.GetListenerId()] = l.GetStats()
	}
	if diff := cmp.Diff(want, view, ignoreVolatile); diff != "" {
		t.Errorf("the messages applied in order, against GetStats (-want +got):\n%s", diff)
	}

	// One listener: it is sent when it changed, and not otherwise.
	one, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{ListenerId: "d", Interval: durationpb.New(100 * time.Millisecond), ChangesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		resp, err := one.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetListeners()); n != want || resp.GetComplete() != (want == 1) {
			t.Errorf("d, message %d: %d listeners, complete %v; want %d", i+1, n, resp.GetComplete(), want)
		}
	}
}
