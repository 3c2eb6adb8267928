package manager_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udpd/udpd/service/manager"
)

// actions renders a plan as "+a ~b(address,limits.burst) -c".
func actions(p manager.Plan) string {
	var parts []string
	for _, c := range p.Changes {
		s := c.Action.Symbol() + c.ID
		if len(c.Fields) > 0 {
			var fs []string
			for _, f := range c.Fields {
				fs = append(fs, f.Field)
			}
			s += "(" + strings.Join(fs, ",") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func sent(t *testing.T, m *manager.Manager, id string) uint64 {
	t.Helper()
	l, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return l.Stats.DatagramsSent
}

// TestApplyConverges applies a configuration that keeps one listener,
// moves one, changes one's limits, adds one and prunes one, and checks
// each against its sockets, its counters and the store.
func TestApplyConverges(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	keep := start(t, m, manager.Spec{ID: "keep", Address: "127.0.0.1:0"})
	move := start(t, m, manager.Spec{ID: "move", Address: "127.0.0.1:0"})
	limit := start(t, m, manager.Spec{ID: "limit", Address: "127.0.0.1:0"})
	gone := start(t, m, manager.Spec{ID: "gone", Address: "127.0.0.1:0"})
	for _, l := range []manager.Listener{keep, keep, move, limit} {
		mustEcho(t, l.BoundAddress, "before")
	}
	waitFor(t, "counters", func() bool { return sent(t, m, "keep") == 2 && sent(t, m, "move") == 1 && sent(t, m, "limit") == 1 })
	savesBefore, _ := store.state()
	_, versionBefore := m.Config()

	moved := freeAddr(t, "127.0.0.1")
	tight := &manager.Limits{PerSecond: 0.001, Burst: 1, LimitLoopback: true}
	want := []manager.Spec{
		{ID: "add", Address: "127.0.0.1:0"},
		{ID: "keep", Address: "127.0.0.1:0"},
		{ID: "limit", Address: "127.0.0.1:0", Limits: tight},
		{ID: "move", Address: moved},
	}
	plan, err := m.Apply(ctx(t), want, manager.ApplyOptions{Prune: true})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, wantPlan := actions(plan), "+add -gone ~limit(limits.per_second,limits.burst,limits.limit_loopback) ~move(address)"; got != wantPlan {
		t.Errorf("plan: got %q, want %q", got, wantPlan)
	}
	if plan.From != versionBefore || plan.Version == versionBefore {
		t.Errorf("plan versions %s → %s, want from %s to a new one", plan.From, plan.Version, versionBefore)
	}
	if _, v := m.Config(); v != plan.Version {
		t.Errorf("version after Apply: got %s, want the plan's %s", v, plan.Version)
	}
	saves, saved := store.state()
	if saves != savesBefore+1 {
		t.Errorf("Apply saved %d times, want once", saves-savesBefore)
	}
	if diff := cmp.Diff(want, saved); diff != "" {
		t.Errorf("saved (-want +got):\n%s", diff)
	}

	// keep: same sockets, counters go on.
	k, _ := m.Get("keep")
	if k.BoundAddress != keep.BoundAddress || k.Generation != 1 || k.Stats.DatagramsSent != 2 {
		t.Errorf("keep after Apply: %v gen %d sent %d, want %v gen 1 sent 2", k.BoundAddress, k.Generation, k.Stats.DatagramsSent, keep.BoundAddress)
	}
	mustEcho(t, keep.BoundAddress, "kept")
	// move: new address, old one released, counters kept.
	mv, _ := m.Get("move")
	if mv.BoundAddress.String() != moved || mv.Generation != 2 || mv.Stats.DatagramsSent != 1 {
		t.Errorf("move after Apply: %v gen %d sent %d, want %s gen 2 sent 1", mv.BoundAddress, mv.Generation, mv.Stats.DatagramsSent, moved)
	}
	mustEcho(t, mv.BoundAddress, "moved")
	mustBindable(t, move.BoundAddress)
	// limit: same socket, new limits in force.
	lm, _ := m.Get("limit")
	if lm.BoundAddress != limit.BoundAddress || lm.Limits != *tight {
		t.Errorf("limit after Apply: %v %+v, want %v %+v", lm.BoundAddress, lm.Limits, limit.BoundAddress, *tight)
	}
	mustEcho(t, limit.BoundAddress, "one")
	mustNotEcho(t, limit.BoundAddress)
	waitFor(t, "limit's rate-limited count", func() bool {
		l, _ := m.Get("limit")
		return l.Stats.RateLimited == 1 && l.Stats.DatagramsSent == 2
	})
	// gone: stopped, released.
	if _, err := m.Get("gone"); !errors.Is(err, manager.ErrNotFound) {
		t.Errorf("Get(gone): got %v, want %v", err, manager.ErrNotFound)
	}
	mustBindable(t, gone.BoundAddress)
	add, _ := m.Get("add")
	mustEcho(t, add.BoundAddress, "added")

	// The same configuration again changes nothing.
	again, err := m.Apply(ctx(t), want, manager.ApplyOptions{Prune: true})
	if err != nil || len(again.Changes) != 0 || again.Version != plan.Version {
		t.Errorf("second Apply: got %q %s, %v, want no changes at %s", actions(again), again.Version, err, plan.Version)
	}
	if saves2, _ := store.state(); saves2 != saves {
		t.Errorf("an Apply with no changes saved %d times", saves2-saves)
	}
}

// TestApplyBindFailureChangesNothing: one listener of the configuration
// cannot bind, so none of the changes happen.
func TestApplyBindFailureChangesNothing(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	held := hold(t, "127.0.0.1").LocalAddr().String()
	free := freeAddr(t, "127.0.0.1")
	savesBefore, specsBefore := store.state()

	_, err := m.Apply(ctx(t), []manager.Spec{
		{ID: "a", Address: "127.0.0.1:0", Limits: &manager.Limits{PerSecond: 5}},
		{ID: "b", Address: free},
		{ID: "c", Address: held},
	}, manager.ApplyOptions{Prune: true})
	var fe *manager.FieldError
	if !errors.Is(err, manager.ErrAddressInUse) || !errors.As(err, &fe) || fe.Field != "address" || !strings.Contains(err.Error(), `listener "c"`) {
		t.Fatalf("Apply: got %v, want address in use naming listener c and field address", err)
	}
	if saves, specs := store.state(); saves != savesBefore || !cmp.Equal(specs, specsBefore) {
		t.Errorf("store after a failed Apply: %d saves %+v, want unchanged", saves-savesBefore, specs)
	}
	if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"a"}) || ls[0].Limits != (manager.Limits{}) {
		t.Errorf("listeners after a failed Apply: %v %+v, want a with no limits", ids(ls), ls[0].Limits)
	}
	mustBindable(t, netip.MustParseAddrPort(free))
	mustEcho(t, a.BoundAddress, "still here")
}

func TestApplyDryRunAndNoPrune(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store})
	start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	free := freeAddr(t, "127.0.0.1")
	desired := []manager.Spec{{ID: "b", Address: free}}
	savesBefore, _ := store.state()

	dry, err := m.Apply(ctx(t), desired, manager.ApplyOptions{Prune: true, DryRun: true})
	if err != nil || actions(dry) != "-a +b" {
		t.Fatalf("dry run: got %q, %v, want -a +b", actions(dry), err)
	}
	if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"a"}) {
		t.Errorf("after a dry run: %v, want [a]", ids(ls))
	}
	mustBindable(t, netip.MustParseAddrPort(free))
	if saves, _ := store.state(); saves != savesBefore {
		t.Errorf("a dry run saved")
	}
	if _, v := m.Config(); v == dry.Version {
		t.Errorf("a dry run changed the version to %s", v)
	}

	// Without prune, a stays.
	plan, err := m.Apply(ctx(t), desired, manager.ApplyOptions{})
	if err != nil || actions(plan) != "+b" {
		t.Fatalf("Apply without prune: got %q, %v, want +b", actions(plan), err)
	}
	if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"a", "b"}) {
		t.Errorf("after Apply without prune: %v, want [a b]", ids(ls))
	}
	if dry.Version == plan.Version {
		t.Errorf("pruned and unpruned configurations have one version %s", plan.Version)
	}
}

func TestApplyInvalid(t *testing.T) {
	m := newManager(t, manager.Options{})
	start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0", Workers: 1})
	fixed := freeAddr(t, "127.0.0.1")
	tests := []struct {
		name   string
		specs  []manager.Spec
		want   error
		field  string
		naming string
	}{
		{"no id", []manager.Spec{{Address: "127.0.0.1:0"}}, manager.ErrInvalidID, "id", "listener 1"},
		{"bad id", []manager.Spec{{ID: "B!", Address: "127.0.0.1:0"}}, manager.ErrInvalidID, "id", `listener "B!"`},
		{"twice", []manager.Spec{{ID: "b", Address: "127.0.0.1:0"}, {ID: "b", Address: "127.0.0.1:0"}}, manager.ErrInvalidArgument, "id", `listener "b"`},
		{"same address", []manager.Spec{{ID: "b", Address: fixed}, {ID: "c", Address: fixed}}, manager.ErrAddressInUse, "address", `listener "c"`},
		{"bad address", []manager.Spec{{ID: "b", Address: "nowhere"}}, manager.ErrInvalidAddress, "address", `listener "b"`},
		{"bad limit", []manager.Spec{{ID: "b", Address: "127.0.0.1:0", Limits: &manager.Limits{MaxReplyRatio: 0.5}}}, manager.ErrInvalidArgument, "limits.max_reply_ratio", `listener "b"`},
		{"workers change", []manager.Spec{{ID: "a", Address: "127.0.0.1:0", Workers: 2}}, manager.ErrInvalidArgument, "workers", `listener "a"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Apply(ctx(t), tc.specs, manager.ApplyOptions{})
			var fe *manager.FieldError
			if !errors.Is(err, tc.want) || !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("got %v, want %v on field %s naming %s", err, tc.want, tc.field, tc.naming)
			}
		})
	}
	if ls, _ := m.List("", 0); !cmp.Equal(ids(ls), []string{"a"}) {
		t.Errorf("after invalid applies: %v, want [a]", ids(ls))
	}
}

// TestVersionMismatch: a change based on an old version fails, for every
// kind of change; one based on the current version goes through.
func TestVersionMismatch(t *testing.T) {
	m := newManager(t, manager.Options{})
	start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	_, old := m.Config()
	start(t, m, manager.Spec{ID: "b", Address: "127.0.0.1:0"})
	_, cur := m.Config()
	if old == cur {
		t.Fatalf("version did not change after a start: %s", cur)
	}
	stale := manager.IfVersion(ctx(t), old)
	calls := map[string]func(context.Context) error{
		"Start": func(c context.Context) error {
			_, err := m.Start(c, manager.Spec{ID: "c", Address: "127.0.0.1:0"}, "")
			return err
		},
		"Rebind": func(c context.Context) error {
			_, err := m.Rebind(c, "a", freeAddr(t, "127.0.0.1"), 0)
			return err
		},
		"Update": func(c context.Context) error {
			_, err := m.Update(c, "a", manager.Limits{PerSecond: 9}, []string{"per_second"})
			return err
		},
		"Apply": func(c context.Context) error {
			_, err := m.Apply(c, []manager.Spec{{ID: "d", Address: "127.0.0.1:0"}}, manager.ApplyOptions{DryRun: true})
			return err
		},
		"Stop": func(c context.Context) error {
			_, err := m.Stop(c, "b", 0)
			return err
		},
	}
	for _, name := range []string{"Start", "Rebind", "Update", "Apply", "Stop"} {
		if err := calls[name](stale); !errors.Is(err, manager.ErrVersionMismatch) {
			t.Errorf("%s on a stale version: got %v, want %v", name, err, manager.ErrVersionMismatch)
		}
		_, v := m.Config()
		if v != cur {
			t.Fatalf("%s on a stale version changed the version", name)
		}
		if err := calls[name](manager.IfVersion(ctx(t), cur)); err != nil {
			t.Errorf("%s on the current version: %v", name, err)
		}
		_, cur = m.Config()
	}
	// A repeated Start changes nothing and checks no version.
	if _, err := m.Start(stale, manager.Spec{ID: "c", Address: "127.0.0.1:0"}, ""); err != nil {
		t.Errorf("repeated Start on a stale version: %v, want the running listener", err)
	}
}

func TestUpdateInPlace(t *testing.T) {
	store := &fakeStore{}
	m := newManager(t, manager.Options{Store: store, Limits: manager.Limits{MaxReplyRatio: 3}})
	a := start(t, m, manager.Spec{ID: "a", Address: "127.0.0.1:0"})
	mustEcho(t, a.BoundAddress, "free")
	savesBefore, _ := store.state()

	got, err := m.Update(ctx(t), "a", manager.Limits{PerSecond: 0.001, Burst: 1, LimitLoopback: true, BytesBurst: 7}, []string{"per_second", "burst", "limit_loopback"})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := manager.Limits{PerSecond: 0.001, Burst: 1, LimitLoopback: true, MaxReplyRatio: 3} // not in the mask: kept
	if got.Limits != want || got.BoundAddress != a.BoundAddress || got.Generation != 1 {
		t.Errorf("Update returned %+v at %v gen %d, want %+v at %v gen 1", got.Limits, got.BoundAddress, got.Generation, want, a.BoundAddress)
	}
	if saves, specs := store.state(); saves != savesBefore+1 || specs[0].Limits == nil || *specs[0].Limits != want {
		t.Errorf("store after Update: %d saves, %+v, want one save of %+v", saves-savesBefore, specs, want)
	}
	mustEcho(t, a.BoundAddress, "one more")
	mustNotEcho(t, a.BoundAddress)
	waitFor(t, "counters", func() bool {
		l, _ := m.Get("a")
		return l.Stats.DatagramsSent == 2 && l.Stats.RateLimited == 1
	})

	if _, err := m.Update(ctx(t), "a", manager.Limits{}, []string{"workers"}); !errors.Is(err, manager.ErrInvalidArgument) {
		t.Errorf("Update of workers: got %v, want %v", err, manager.ErrInvalidArgument)
	}
	if _, err := m.Update(ctx(t), "a", manager.Limits{Burst: -1}, []string{"burst"}); !errors.Is(err, manager.ErrInvalidArgument) {
		t.Errorf("Update to a bad burst: got %v, want %v", err, manager.ErrInvalidArgument)
	}
	if _, err := m.Update(ctx(t), "nope", manager.Limits{}, nil); !errors.Is(err, manager.ErrNotFound) {
		t.Errorf("Update of an unknown listener: got %v, want %v", err, manager.ErrNotFound)
	}
	// Loosening with an empty mask sets every field.
	if got, err := m.Update(ctx(t), "a", manager.Limits{}, nil); err != nil || got.Limits != (manager.Limits{}) {
		t.Errorf("Update to no limits: %+v, %v", got.Limits, err)
	}
	mustEcho(t, a.BoundAddress, "free again")
}
