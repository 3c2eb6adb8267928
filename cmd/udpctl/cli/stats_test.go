package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

func TestApplyChanges(t *testing.T) {
	ls := func(id string, sent uint64) *adminv1.ListenerStats {
		return &adminv1.ListenerStats{ListenerId: id, Stats: &adminv1.Stats{DatagramsSent: sent}}
	}
	msg := func(sec int64, complete bool, total uint64, l ...*adminv1.ListenerStats) *adminv1.WatchStatsResponse {
		return &adminv1.WatchStatsResponse{Time: &timestamppb.Timestamp{Seconds: sec}, Total: &adminv1.Stats{DatagramsSent: total}, Complete: complete, Listeners: l}
	}
	first := msg(1, true, 3, ls("a", 1), ls("c", 2))
	steps := []struct {
		name string
		resp *adminv1.WatchStatsResponse
		want *adminv1.WatchStatsResponse
	}{
		{"complete first", first, msg(1, true, 3, ls("a", 1), ls("c", 2))},
		{"nothing changed", msg(2, false, 3), msg(2, true, 3, ls("a", 1), ls("c", 2))},
		{"c changed", msg(3, false, 5, ls("c", 4)), msg(3, true, 5, ls("a", 1), ls("c", 4))},
		{"b unknown so far", msg(4, false, 6, ls("b", 1)), msg(4, true, 6, ls("a", 1), ls("b", 1), ls("c", 4))},
		{"complete again, a gone", msg(5, true, 6, ls("b", 1), ls("c", 4)), msg(5, true, 6, ls("b", 1), ls("c", 4))},
	}
	var w watchView
	for _, s := range steps {
		before, saved := w.last, proto.Clone(w.last)
		view := w.apply(s.resp)
		if diff := cmp.Diff(s.want, view, protocmp.Transform()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
		// The previous view is the caller's (the live table's rates use
		// it): applyChanges must leave it as it was.
		if before != nil {
			if diff := cmp.Diff(saved, before, protocmp.Transform()); diff != "" {
				t.Errorf("%s changed the previous view (-before +after):\n%s", s.name, diff)
			}
		}
	}
}

// TestWatchViewOlderDaemon: a daemon from before changes_only ignores it
// and sends every listener each time, without complete; each message is
// then the whole view, so a listener it stopped leaves the view.
func TestWatchViewOlderDaemon(t *testing.T) {
	ls := func(id string) *adminv1.ListenerStats {
		return &adminv1.ListenerStats{ListenerId: id, Stats: &adminv1.Stats{}}
	}
	var w watchView
	w.apply(&adminv1.WatchStatsResponse{Listeners: []*adminv1.ListenerStats{ls("a"), ls("b")}})
	got := w.apply(&adminv1.WatchStatsResponse{Listeners: []*adminv1.ListenerStats{ls("b")}})
	want := &adminv1.WatchStatsResponse{Complete: true, Listeners: []*adminv1.ListenerStats{ls("b")}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("after a stopped on an older daemon (-want +got):\n%s", diff)
	}
}
