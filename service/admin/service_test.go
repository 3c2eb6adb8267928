package admin_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/manager"
)

func TestStartListener(t *testing.T) {
	fixed := freeAddr(t, "127.0.0.1")
	_, fixedPort, _ := strings.Cut(fixed, ":")
	tests := []struct {
		name string
		v6   bool
		req  *adminv1.StartListenerRequest
		want *adminv1.Listener
	}{
		{"explicit id", false,
			&adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"},
			&adminv1.Listener{Id: "a", Address: "127.0.0.1:0", State: adminv1.Listener_STATE_RUNNING, Generation: 1, Workers: 1, Stats: &adminv1.Stats{}, Limits: &adminv1.Limits{}}},
		{"generated id", false,
			&adminv1.StartListenerRequest{Address: fixed},
			&adminv1.Listener{Id: "udp-" + fixedPort, Address: fixed, State: adminv1.Listener_STATE_RUNNING, Generation: 1, Workers: 1, Stats: &adminv1.Stats{}, Limits: &adminv1.Limits{}}},
		{"two workers", false,
			&adminv1.StartListenerRequest{Id: "w", Address: "localhost:0", Workers: 2},
			&adminv1.Listener{Id: "w", Address: "localhost:0", State: adminv1.Listener_STATE_RUNNING, Generation: 1, Workers: 2, Stats: &adminv1.Stats{}, Limits: &adminv1.Limits{}}},
		{"ipv6", true,
			&adminv1.StartListenerRequest{Id: "v6", Address: "[::1]:0"},
			&adminv1.Listener{Id: "v6", Address: "[::1]:0", State: adminv1.Listener_STATE_RUNNING, Generation: 1, Workers: 1, Stats: &adminv1.Stats{}, Limits: &adminv1.Limits{}}},
	}
	e := newEnv(t, manager.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.v6 {
				skipWithoutIPv6(t)
			}
			before := time.Now()
			got := e.start(t, tc.req)
			if diff := cmp.Diff(tc.want, got, ignoreVolatile); diff != "" {
				t.Errorf("StartListener(%v) (-want +got):\n%s", tc.req, diff)
			}
			addr := boundAddr(t, got)
			if addr.Addr().Is6() != tc.v6 {
				t.Errorf("bound_address: got %v, want the asked family", addr)
			}
			created := got.GetCreateTime().AsTime()
			if created.Before(before.Add(-time.Second)) || !got.GetBindTime().AsTime().Equal(created) {
				t.Errorf("create_time, bind_time: got %v, %v, want equal and about now", created, got.GetBindTime().AsTime())
			}
			mustEcho(t, addr, "hello from "+tc.name)
		})
	}
}

func TestStartListenerIdempotent(t *testing.T) {
	e := newEnv(t, manager.Options{})
	first := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0", RequestId: "req-1"})
	repeats := []struct {
		name string
		req  *adminv1.StartListenerRequest
	}{
		{"same id and address", &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"}},
		{"no id, bound address", &adminv1.StartListenerRequest{Address: first.GetBoundAddress()}},
		{"request id replay with other arguments", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0", RequestId: "req-1"}},
	}
	for _, tc := range repeats {
		t.Run(tc.name, func(t *testing.T) {
			got := e.start(t, tc.req)
			if diff := cmp.Diff(first, got, protocmp.Transform(), protocmp.IgnoreFields(&adminv1.Listener{}, "stats")); diff != "" {
				t.Errorf("StartListener(%v) (-first +got):\n%s", tc.req, diff)
			}
		})
	}
	resp, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetListeners()); n != 1 {
		t.Errorf("listeners after repeats: got %d, want 1", n)
	}
}

func TestStartListenerErrors(t *testing.T) {
	e := newEnv(t, manager.Options{})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	tests := []struct {
		name   string
		req    *adminv1.StartListenerRequest
		code   codes.Code
		reason string
		fields []string
	}{
		{"no address", &adminv1.StartListenerRequest{Id: "b"},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"address"}},
		{"missing port", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"port out of range", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:70000"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"bad host", &adminv1.StartListenerRequest{Id: "b", Address: "foo:12000"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"empty host", &adminv1.StartListenerRequest{Id: "b", Address: ":12000"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"multicast", &adminv1.StartListenerRequest{Id: "b", Address: "224.0.0.1:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"ipv6 multicast", &adminv1.StartListenerRequest{Id: "b", Address: "[ff02::1]:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"broadcast", &adminv1.StartListenerRequest{Id: "b", Address: "255.255.255.255:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"a network's broadcast", &adminv1.StartListenerRequest{Id: "b", Address: "127.255.255.255:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"unknown zone", &adminv1.StartListenerRequest{Id: "b", Address: "[fe80::1%nosuchif]:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"link-local without zone", &adminv1.StartListenerRequest{Id: "b", Address: "[fe80::1]:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"request id too long", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0", RequestId: strings.Repeat("r", 129)},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"request_id"}},
		{"request id of 1 MiB", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0", RequestId: strings.Repeat("r", 1<<20)},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"request_id"}},
		{"request id with a space", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0", RequestId: "two words"},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"request_id"}},
		{"bad id", &adminv1.StartListenerRequest{Id: "Not_An_ID", Address: "127.0.0.1:0"},
			codes.InvalidArgument, "INVALID_ID", []string{"id"}},
		{"too many workers", &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0", Workers: 5000},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"workers"}},
		{"same id, other address", &adminv1.StartListenerRequest{Id: "a", Address: "[::1]:0"},
			codes.AlreadyExists, "LISTENER_ALREADY_EXISTS", nil},
		{"address in use", &adminv1.StartListenerRequest{Id: "b", Address: a.GetBoundAddress()},
			codes.FailedPrecondition, "ADDRESS_IN_USE", nil},
		{"wildcard over a used port", &adminv1.StartListenerRequest{Id: "b", Address: "0.0.0.0:" + strings.TrimPrefix(a.GetBoundAddress(), "127.0.0.1:")},
			codes.FailedPrecondition, "ADDRESS_IN_USE", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.client.StartListener(ctx(t), tc.req)
			if err == nil {
				t.Fatalf("StartListener(%v): got %v, want %v", tc.req, resp, tc.code)
			}
			wantStatus(t, err, tc.code, tc.reason, tc.fields...)
		})
	}
}

func TestStartListenerQuota(t *testing.T) {
	e := newEnv(t, manager.Options{MaxListeners: 1})
	e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	_, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
	wantStatus(t, err, codes.ResourceExhausted, "LISTENER_QUOTA_EXCEEDED")
}

func TestStateSaveFailure(t *testing.T) {
	store := &failingStore{}
	e := newEnv(t, manager.Options{Store: store})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	store.setFail(true)
	calls := []struct {
		name string
		call func() error
	}{
		{"StartListener", func() error {
			_, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
			return err
		}},
		{"StopListener", func() error {
			_, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a"})
			return err
		}},
		{"RebindListener", func() error {
			_, err := e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: "a", Address: freeAddr(t, "127.0.0.1")})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			wantStatus(t, c.call(), codes.Unavailable, "STATE_SAVE_FAILED")
			mustEcho(t, boundAddr(t, a), "a still serves")
		})
	}
}

func TestShuttingDown(t *testing.T) {
	e := newEnv(t, manager.Options{})
	e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	if err := e.m.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
	wantStatus(t, err, codes.Unavailable, "SHUTTING_DOWN")
	_, err = e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a"})
	wantStatus(t, err, codes.Unavailable, "SHUTTING_DOWN")
	_, err = e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: "a", Address: "127.0.0.1:1"})
	wantStatus(t, err, codes.Unavailable, "SHUTTING_DOWN")
}

func TestGetListener(t *testing.T) {
	e := newEnv(t, manager.Options{})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	mustEcho(t, boundAddr(t, a), "abc")
	var got *adminv1.Listener
	waitFor(t, "one datagram counted", func() bool {
		resp, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "a"})
		if err != nil {
			t.Fatalf("GetListener: %v", err)
		}
		got = resp.GetListener()
		return got.GetStats().GetDatagramsSent() == 1
	})
	want := &adminv1.Listener{
		Limits: &adminv1.Limits{},
		Id:     "a", Address: "127.0.0.1:0", BoundAddress: a.GetBoundAddress(),
		State: adminv1.Listener_STATE_RUNNING, Generation: 1, Workers: 1,
		CreateTime: a.GetCreateTime(), BindTime: a.GetBindTime(),
		Stats: &adminv1.Stats{DatagramsReceived: 1, DatagramsSent: 1, BytesReceived: 3, BytesSent: 3, StartTime: a.GetStats().GetStartTime()},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("GetListener (-want +got):\n%s", diff)
	}

	_, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "nope"})
	wantStatus(t, err, codes.NotFound, "LISTENER_NOT_FOUND")
	// A malformed id is a bad request, not an unknown listener.
	for _, id := range []string{"", "Not_An_ID"} {
		_, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: id})
		wantStatus(t, err, codes.InvalidArgument, "INVALID_ID", "id")
	}
}

func TestListListeners(t *testing.T) {
	e := newEnv(t, manager.Options{})
	for _, id := range []string{"c", "a", "b"} {
		e.start(t, &adminv1.StartListenerRequest{Id: id, Address: "127.0.0.1:0"})
	}
	list := func(t *testing.T, size int32, token string) ([]string, string) {
		t.Helper()
		resp, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{PageSize: size, PageToken: token})
		if err != nil {
			t.Fatalf("ListListeners(%d, %q): %v", size, token, err)
		}
		var ids []string
		for _, l := range resp.GetListeners() {
			ids = append(ids, l.GetId())
			if l.GetState() != adminv1.Listener_STATE_RUNNING || l.GetBoundAddress() == "" || l.GetStats() == nil {
				t.Errorf("listed %s: got %v, want it running with a bound address and stats", l.GetId(), l)
			}
		}
		return ids, resp.GetNextPageToken()
	}

	t.Run("default page size", func(t *testing.T) {
		ids, next := list(t, 0, "")
		if want := []string{"a", "b", "c"}; !cmp.Equal(ids, want) || next != "" {
			t.Errorf("got %v next %q, want %v and no next page", ids, next, want)
		}
	})
	t.Run("pages of 1", func(t *testing.T) {
		var got []string
		token := ""
		for page := range 10 {
			ids, next := list(t, 1, token)
			if len(ids) != 1 {
				t.Fatalf("page %d: got %v, want 1 listener", page, ids)
			}
			got = append(got, ids...)
			if next == "" {
				break
			}
			token = next
		}
		if want := []string{"a", "b", "c"}; !cmp.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("pages of 2", func(t *testing.T) {
		ids, next := list(t, 2, "")
		if want := []string{"a", "b"}; !cmp.Equal(ids, want) || next == "" {
			t.Fatalf("first page: got %v next %q, want %v and a next page", ids, next, want)
		}
		ids, next = list(t, 2, next)
		if want := []string{"c"}; !cmp.Equal(ids, want) || next != "" {
			t.Errorf("second page: got %v next %q, want %v and no next page", ids, next, want)
		}
	})
	t.Run("page size over the maximum", func(t *testing.T) {
		ids, next := list(t, 1<<30, "")
		if want := []string{"a", "b", "c"}; !cmp.Equal(ids, want) || next != "" {
			t.Errorf("got %v next %q, want %v", ids, next, want)
		}
	})
	t.Run("token of a listener stopped since", func(t *testing.T) {
		_, next := list(t, 1, "")
		if _, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a"}); err != nil {
			t.Fatal(err)
		}
		ids, _ := list(t, 0, next)
		if want := []string{"b", "c"}; !cmp.Equal(ids, want) {
			t.Errorf("got %v, want %v", ids, want)
		}
	})

	bad := []struct {
		name  string
		req   *adminv1.ListListenersRequest
		field string
	}{
		{"negative page size", &adminv1.ListListenersRequest{PageSize: -1}, "page_size"},
		{"token not base64", &adminv1.ListListenersRequest{PageToken: "!!!"}, "page_token"},
		{"garbage token", &adminv1.ListListenersRequest{PageToken: "garbage"}, "page_token"},
		{"token of a padded encoding", &adminv1.ListListenersRequest{PageToken: base64.URLEncoding.EncodeToString([]byte("a"))}, "page_token"},
		{"token of a non-id", &adminv1.ListListenersRequest{PageToken: base64.RawURLEncoding.EncodeToString([]byte("../etc"))}, "page_token"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.client.ListListeners(ctx(t), tc.req)
			if err == nil {
				t.Fatalf("ListListeners(%v): got %v, want InvalidArgument", tc.req, resp)
			}
			wantStatus(t, err, codes.InvalidArgument, "INVALID_ARGUMENT", tc.field)
		})
	}
	t.Run("message names the bad value", func(t *testing.T) {
		_, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{PageSize: -7})
		if msg, want := status.Convert(err).Message(), `page_size "-7": must not be negative`; msg != want {
			t.Errorf("message: got %q, want %q", msg, want)
		}
	})
}

func TestRebindListener(t *testing.T) {
	e := newEnv(t, manager.Options{})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	old := boundAddr(t, a)
	mustEcho(t, old, "before")
	to := freeAddr(t, "127.0.0.1")
	resp, err := e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: "a", Address: to, DrainTimeout: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatalf("RebindListener: %v", err)
	}
	got := resp.GetListener()
	want := &adminv1.Listener{
		Limits: &adminv1.Limits{},
		Id:     "a", Address: to, BoundAddress: to, State: adminv1.Listener_STATE_RUNNING, Generation: 2, Workers: 1,
		Stats: &adminv1.Stats{DatagramsReceived: 1, DatagramsSent: 1, BytesReceived: 6, BytesSent: 6},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform(),
		protocmp.IgnoreFields(&adminv1.Listener{}, "create_time", "bind_time"),
		protocmp.IgnoreFields(&adminv1.Stats{}, "start_time")); diff != "" {
		t.Errorf("RebindListener (-want +got):\n%s", diff)
	}
	if !got.GetCreateTime().AsTime().Equal(a.GetCreateTime().AsTime()) || got.GetBindTime().AsTime().Before(a.GetBindTime().AsTime()) {
		t.Errorf("create_time, bind_time: got %v, %v, want create_time kept and a later bind_time", got.GetCreateTime(), got.GetBindTime())
	}
	mustEcho(t, boundAddr(t, got), "after")
	mustNotEcho(t, old)

	// Where it already is: nothing changes.
	again, err := e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: "a", Address: to})
	if err != nil || again.GetListener().GetGeneration() != 2 {
		t.Errorf("RebindListener to the same address: got %v, %v, want generation 2 unchanged", again, err)
	}

	b := e.start(t, &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
	tests := []struct {
		name   string
		req    *adminv1.RebindListenerRequest
		code   codes.Code
		reason string
		fields []string
	}{
		{"unknown id", &adminv1.RebindListenerRequest{Id: "nope", Address: "127.0.0.1:0"},
			codes.NotFound, "LISTENER_NOT_FOUND", nil},
		{"address in use", &adminv1.RebindListenerRequest{Id: "a", Address: b.GetBoundAddress()},
			codes.FailedPrecondition, "ADDRESS_IN_USE", nil},
		{"no address", &adminv1.RebindListenerRequest{Id: "a"},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"address"}},
		{"bad host", &adminv1.RebindListenerRequest{Id: "a", Address: "foo:1"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"port out of range", &adminv1.RebindListenerRequest{Id: "a", Address: "127.0.0.1:99999"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"multicast", &adminv1.RebindListenerRequest{Id: "a", Address: "[ff02::1]:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"unknown zone", &adminv1.RebindListenerRequest{Id: "a", Address: "[fe80::1%nosuchif]:0"},
			codes.InvalidArgument, "INVALID_ADDRESS", []string{"address"}},
		{"invalid drain timeout", &adminv1.RebindListenerRequest{Id: "a", Address: "127.0.0.1:0", DrainTimeout: &durationpb.Duration{Seconds: 1, Nanos: -1}},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"drain_timeout"}},
		{"drain timeout over a minute", &adminv1.RebindListenerRequest{Id: "a", Address: "127.0.0.1:0", DrainTimeout: durationpb.New(2 * time.Minute)},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"drain_timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.client.RebindListener(ctx(t), tc.req)
			if err == nil {
				t.Fatalf("RebindListener(%v): got %v, want %v", tc.req, resp, tc.code)
			}
			wantStatus(t, err, tc.code, tc.reason, tc.fields...)
			mustEcho(t, boundAddr(t, got), "a did not move")
		})
	}
}

func TestStopListener(t *testing.T) {
	e := newEnv(t, manager.Options{})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	addr := boundAddr(t, a)
	mustEcho(t, addr, "one")
	mustEcho(t, addr, "two")

	resp, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a", DrainTimeout: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatalf("StopListener: %v", err)
	}
	want := &adminv1.Listener{
		Limits: &adminv1.Limits{},
		Id:     "a", Address: "127.0.0.1:0", BoundAddress: a.GetBoundAddress(),
		State: adminv1.Listener_STATE_STOPPED, Generation: 1, Workers: 1,
		CreateTime: a.GetCreateTime(), BindTime: a.GetBindTime(),
		Stats: &adminv1.Stats{DatagramsReceived: 2, DatagramsSent: 2, BytesReceived: 6, BytesSent: 6, StartTime: a.GetStats().GetStartTime()},
	}
	if diff := cmp.Diff(want, resp.GetListener(), protocmp.Transform()); diff != "" {
		t.Errorf("StopListener (-want +got):\n%s", diff)
	}
	mustNotEcho(t, addr)
	_, err = e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "a"})
	wantStatus(t, err, codes.NotFound, "LISTENER_NOT_FOUND")

	t.Run("allow missing", func(t *testing.T) {
		resp, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a", AllowMissing: true})
		if err != nil {
			t.Fatalf("StopListener(allow_missing): %v", err)
		}
		if diff := cmp.Diff(&adminv1.StopListenerResponse{}, resp, protocmp.Transform()); diff != "" {
			t.Errorf("StopListener(allow_missing) (-want +got):\n%s", diff)
		}
	})
	tests := []struct {
		name   string
		req    *adminv1.StopListenerRequest
		code   codes.Code
		reason string
		fields []string
	}{
		{"stopped already", &adminv1.StopListenerRequest{Id: "a"}, codes.NotFound, "LISTENER_NOT_FOUND", nil},
		{"unknown id", &adminv1.StopListenerRequest{Id: "nope"}, codes.NotFound, "LISTENER_NOT_FOUND", nil},
		{"invalid drain timeout", &adminv1.StopListenerRequest{Id: "a", DrainTimeout: &durationpb.Duration{Nanos: 2e9}},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"drain_timeout"}},
		{"negative drain timeout, allow missing", &adminv1.StopListenerRequest{Id: "a", DrainTimeout: durationpb.New(-time.Second), AllowMissing: true},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"drain_timeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.client.StopListener(ctx(t), tc.req)
			if err == nil {
				t.Fatalf("StopListener(%v): got %v, want %v", tc.req, resp, tc.code)
			}
			wantStatus(t, err, tc.code, tc.reason, tc.fields...)
		})
	}
}

func TestGetStats(t *testing.T) {
	e := newEnv(t, manager.Options{})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	b := e.start(t, &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
	mustEcho(t, boundAddr(t, a), "a1")
	mustEcho(t, boundAddr(t, a), "a2")
	mustEcho(t, boundAddr(t, b), "b1")
	c := e.start(t, &adminv1.StartListenerRequest{Id: "c", Address: "127.0.0.1:0"})
	mustEcho(t, boundAddr(t, c), "c-1")
	if _, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "c"}); err != nil {
		t.Fatal(err)
	}

	var got *adminv1.GetStatsResponse
	waitFor(t, "3 datagrams counted on a and b", func() bool {
		var err error
		got, err = e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{})
		if err != nil {
			t.Fatalf("GetStats: %v", err)
		}
		return got.GetTotal().GetDatagramsSent() == 4
	})
	two := &adminv1.Stats{DatagramsReceived: 2, DatagramsSent: 2, BytesReceived: 4, BytesSent: 4}
	one := &adminv1.Stats{DatagramsReceived: 1, DatagramsSent: 1, BytesReceived: 2, BytesSent: 2}
	want := &adminv1.GetStatsResponse{
		// The total keeps stopped c's datagram.
		Total:     &adminv1.Stats{DatagramsReceived: 4, DatagramsSent: 4, BytesReceived: 9, BytesSent: 9},
		Listeners: []*adminv1.ListenerStats{{ListenerId: "a", Stats: two}, {ListenerId: "b", Stats: one}},
	}
	if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
		t.Errorf("GetStats (-want +got):\n%s", diff)
	}
	if got.GetTime() == nil || got.GetTotal().GetStartTime().AsTime().After(a.GetCreateTime().AsTime()) {
		t.Errorf("time, total start_time: got %v, %v, want set and the daemon's start", got.GetTime(), got.GetTotal().GetStartTime())
	}

	t.Run("one listener", func(t *testing.T) {
		got, err := e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{ListenerId: "b"})
		if err != nil {
			t.Fatal(err)
		}
		want := &adminv1.GetStatsResponse{Total: want.GetTotal(), Listeners: []*adminv1.ListenerStats{{ListenerId: "b", Stats: one}}}
		if diff := cmp.Diff(want, got, ignoreVolatile); diff != "" {
			t.Errorf("GetStats(b) (-want +got):\n%s", diff)
		}
	})
	for _, id := range []string{"nope", "c"} {
		t.Run("unknown "+id, func(t *testing.T) {
			_, err := e.client.GetStats(ctx(t), &adminv1.GetStatsRequest{ListenerId: id})
			wantStatus(t, err, codes.NotFound, "LISTENER_NOT_FOUND")
		})
	}
}

func TestWatchStats(t *testing.T) {
	e := newEnv(t, manager.Options{})
	a := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	e.start(t, &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
	stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{ListenerId: "a", Interval: durationpb.New(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("first snapshot: %v", err)
	}
	want := &adminv1.WatchStatsResponse{Total: &adminv1.Stats{}, Listeners: []*adminv1.ListenerStats{{ListenerId: "a", Stats: &adminv1.Stats{}}}, Complete: true}
	if diff := cmp.Diff(want, first, ignoreVolatile); diff != "" {
		t.Errorf("first snapshot (-want +got):\n%s", diff)
	}
	second, err := stream.Recv()
	if err != nil {
		t.Fatalf("second snapshot: %v", err)
	}
	if !second.GetTime().AsTime().After(first.GetTime().AsTime()) {
		t.Errorf("second snapshot time: got %v, want after %v", second.GetTime().AsTime(), first.GetTime().AsTime())
	}

	mustEcho(t, boundAddr(t, a), "watched")
	var last *adminv1.WatchStatsResponse
	for range 50 { // 5 s at 100 ms
		if last, err = stream.Recv(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if last.GetListeners()[0].GetStats().GetDatagramsSent() == 1 {
			break
		}
	}
	want.Total = &adminv1.Stats{DatagramsReceived: 1, DatagramsSent: 1, BytesReceived: 7, BytesSent: 7}
	want.Listeners[0].Stats = want.Total
	if diff := cmp.Diff(want, last, ignoreVolatile); diff != "" {
		t.Errorf("snapshot after traffic (-want +got):\n%s", diff)
	}

	// Stopping the watched listener ends the stream with NOT_FOUND.
	if _, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a"}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	wantStatus(t, err, codes.NotFound, "LISTENER_NOT_FOUND")
}

func TestWatchStatsErrors(t *testing.T) {
	e := newEnv(t, manager.Options{})
	e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	tests := []struct {
		name   string
		req    *adminv1.WatchStatsRequest
		code   codes.Code
		reason string
		fields []string
	}{
		{"unknown id", &adminv1.WatchStatsRequest{ListenerId: "nope"}, codes.NotFound, "LISTENER_NOT_FOUND", nil},
		{"invalid interval", &adminv1.WatchStatsRequest{Interval: &durationpb.Duration{Seconds: -1, Nanos: 1}},
			codes.InvalidArgument, "INVALID_ARGUMENT", []string{"interval"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := e.client.WatchStats(ctx(t), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err == nil {
				t.Fatalf("WatchStats(%v): got %v, want %v", tc.req, resp, tc.code)
			}
			wantStatus(t, err, tc.code, tc.reason, tc.fields...)
		})
	}
}

// TestWatchStatsDrain checks that Drain ends every watch with UNAVAILABLE
// while unary calls keep working.
func TestWatchStatsDrain(t *testing.T) {
	e := newEnv(t, manager.Options{})
	e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	var streams []adminv1.ListenerService_WatchStatsClient
	for _, id := range []string{"", "a"} {
		// An hour between snapshots: only Drain can end these in time.
		stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{ListenerId: id, Interval: durationpb.New(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("first snapshot: %v", err)
		}
		streams = append(streams, stream)
	}
	e.srv.Drain()
	for i, stream := range streams {
		_, err := stream.Recv()
		if err == nil {
			t.Fatalf("stream %d after Drain: got a snapshot, want UNAVAILABLE", i)
		}
		wantStatus(t, err, codes.Unavailable, "SHUTTING_DOWN")
	}
	if _, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "a"}); err != nil {
		t.Errorf("GetListener after Drain: got %v, want it answered", err)
	}
	// A watch started after Drain sends its snapshot and ends at once.
	stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{Interval: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	wantStatus(t, err, codes.Unavailable, "SHUTTING_DOWN")
}

// TestListListenersCapsThePageSize starts one listener more than the
// largest page: a page_size beyond the cap gets a full page and a token
// for the rest, not every listener in one answer.
func TestListListenersCapsThePageSize(t *testing.T) {
	t.Parallel()
	const maxPage = 1000 // the documented cap
	e := newEnv(t, manager.Options{Workers: 1, MaxListeners: maxPage + 1})
	for i := range maxPage + 1 {
		if _, err := e.m.Start(ctx(t), manager.Spec{ID: fmt.Sprintf("l%04d", i), Address: "127.0.0.1:0"}, ""); err != nil {
			t.Fatalf("start listener %d: %v", i, err)
		}
	}
	resp, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{PageSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetListeners()); n != maxPage || resp.GetNextPageToken() == "" {
		t.Fatalf("page_size 2^30: got %d listeners (next page token %q), want %d and a token", n, resp.GetNextPageToken(), maxPage)
	}
	rest, err := e.client.ListListeners(ctx(t), &adminv1.ListListenersRequest{PageSize: 1 << 30, PageToken: resp.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	if ids := rest.GetListeners(); len(ids) != 1 || ids[0].GetId() != "l1000" || rest.GetNextPageToken() != "" {
		t.Errorf("the second page: got %d listeners, token %q; want l1000 alone", len(ids), rest.GetNextPageToken())
	}
}
