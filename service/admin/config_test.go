package admin_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/manager"
)

// TestApplyConfigOverGRPC: get, dry run, apply with prune, a stale
// version, and a bind failure naming the listener and the field, through
// a real admin server.
func TestApplyConfigOverGRPC(t *testing.T) {
	e := newEnv(t, manager.Options{})
	keep := e.start(t, &adminv1.StartListenerRequest{Id: "keep", Address: "127.0.0.1:0"})
	e.start(t, &adminv1.StartListenerRequest{Id: "gone", Address: "127.0.0.1:0"})
	udptest.MustEcho(t, boundAddr(t, keep), "counted")

	got, err := e.client.GetConfig(ctx(t), &adminv1.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := []*adminv1.ListenerConfig{{Id: "gone", Address: "127.0.0.1:0"}, {Id: "keep", Address: "127.0.0.1:0"}}
	if diff := cmp.Diff(wantCfg, got.GetListeners(), protocmp.Transform()); diff != "" || got.GetConfigVersion() == "" {
		t.Fatalf("GetConfig (-want +got):\n%s version %q", diff, got.GetConfigVersion())
	}
	v0 := got.GetConfigVersion()

	added := freeAddr(t, "127.0.0.1")
	desired := []*adminv1.ListenerConfig{
		{Id: "keep", Address: "127.0.0.1:0", Limits: &adminv1.Limits{MaxReplyRatio: 2}},
		{Id: "new", Address: added},
	}
	req := &adminv1.ApplyConfigRequest{Listeners: desired, Prune: true, DryRun: true, ConfigVersion: v0, DrainTimeout: nil}
	dry, err := e.client.ApplyConfig(ctx(t), req)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	wantPlan := &adminv1.ApplyConfigResponse{
		PreviousConfigVersion: v0,
		DryRun:                true,
		Changes: []*adminv1.ConfigChange{
			{Action: adminv1.ConfigChange_ACTION_STOP, ListenerId: "gone", Config: &adminv1.ListenerConfig{Id: "gone", Address: "127.0.0.1:0"}},
			{Action: adminv1.ConfigChange_ACTION_UPDATE, ListenerId: "keep", Config: desired[0],
				Fields: []*adminv1.FieldChange{{Field: "limits.max_reply_ratio", From: "0", To: "2"}}},
			{Action: adminv1.ConfigChange_ACTION_START, ListenerId: "new", Config: desired[1]},
		},
	}
	ignoreVersion := protocmp.IgnoreFields(&adminv1.ApplyConfigResponse{}, "config_version")
	if diff := cmp.Diff(wantPlan, dry, protocmp.Transform(), ignoreVersion); diff != "" {
		t.Errorf("dry-run plan (-want +got):\n%s", diff)
	}
	if after, _ := e.client.GetConfig(ctx(t), &adminv1.GetConfigRequest{}); after.GetConfigVersion() != v0 {
		t.Errorf("a dry run changed the version")
	}

	req.DryRun = false
	applied, err := e.client.ApplyConfig(ctx(t), req)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	wantPlan.DryRun = false
	if diff := cmp.Diff(wantPlan, applied, protocmp.Transform(), ignoreVersion); diff != "" {
		t.Errorf("applied plan (-want +got):\n%s", diff)
	}
	if applied.GetConfigVersion() != dry.GetConfigVersion() {
		t.Errorf("applied version %s, dry run said %s", applied.GetConfigVersion(), dry.GetConfigVersion())
	}
	k, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	if boundAddr(t, k.GetListener()) != boundAddr(t, keep) || k.GetListener().GetStats().GetDatagramsSent() != 1 || k.GetListener().GetLimits().GetMaxReplyRatio() != 2 {
		t.Errorf("keep after apply: %v, want the same socket, 1 sent, max_reply_ratio 2", k.GetListener())
	}

	// The same request again changes nothing, so it succeeds even though
	// its version is stale (a retry after a lost answer).
	if again, err := e.client.ApplyConfig(ctx(t), req); err != nil || len(again.GetChanges()) != 0 {
		t.Errorf("repeated apply: %v, %v, want no changes", again, err)
	}
	// A change based on the old version is ABORTED, for ApplyConfig and
	// for the single-listener calls.
	_, err = e.client.ApplyConfig(ctx(t), &adminv1.ApplyConfigRequest{Listeners: []*adminv1.ListenerConfig{{Id: "x", Address: "127.0.0.1:0"}}, ConfigVersion: v0})
	wantStatus(t, err, codes.Aborted, "CONFIG_VERSION_MISMATCH")
	_, err = e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "keep", ConfigVersion: v0})
	wantStatus(t, err, codes.Aborted, "CONFIG_VERSION_MISMATCH")
	_, err = e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "x", Address: "127.0.0.1:0", ConfigVersion: v0})
	wantStatus(t, err, codes.Aborted, "CONFIG_VERSION_MISMATCH")
	_, err = e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: "keep", Address: freeAddr(t, "127.0.0.1"), ConfigVersion: v0})
	wantStatus(t, err, codes.Aborted, "CONFIG_VERSION_MISMATCH")

	// A bind that fails: nothing changes, the error names the listener
	// and the field.
	held := hold(t)
	_, err = e.client.ApplyConfig(ctx(t), &adminv1.ApplyConfigRequest{Prune: true, Listeners: []*adminv1.ListenerConfig{
		{Id: "other", Address: freeAddr(t, "127.0.0.1")},
		{Id: "taken", Address: held},
	}})
	wantStatus(t, err, codes.FailedPrecondition, "ADDRESS_IN_USE", "address")
	if err == nil || !contains(err.Error(), `listener "taken"`) {
		t.Errorf("bind failure %v: want it to name listener \"taken\"", err)
	}
	if after, _ := e.client.GetConfig(ctx(t), &adminv1.GetConfigRequest{}); after.GetConfigVersion() != applied.GetConfigVersion() || len(after.GetListeners()) != 2 {
		t.Errorf("a failed apply changed the configuration: %v", after)
	}
}

func TestUpdateListenerOverGRPC(t *testing.T) {
	e := newEnv(t, manager.Options{})
	l := e.start(t, &adminv1.StartListenerRequest{Id: "a", Address: "127.0.0.1:0"})
	udptest.MustEcho(t, boundAddr(t, l), "before")
	resp, err := e.client.UpdateListener(ctx(t), &adminv1.UpdateListenerRequest{
		Id:         "a",
		Limits:     &adminv1.Limits{PerSecond: 0.001, Burst: 1, LimitLoopback: true, MaxReplyRatio: 9},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"limits.per_second", "limits.burst", "limits.limit_loopback"}},
	})
	if err != nil {
		t.Fatalf("UpdateListener: %v", err)
	}
	want := &adminv1.Limits{PerSecond: 0.001, Burst: 1, LimitLoopback: true}
	if diff := cmp.Diff(want, resp.GetListener().GetLimits(), protocmp.Transform()); diff != "" || boundAddr(t, resp.GetListener()) != boundAddr(t, l) {
		t.Errorf("updated limits (-want +got):\n%s", diff)
	}
	udptest.MustEcho(t, boundAddr(t, l), "one")
	udptest.MustNotEcho(t, boundAddr(t, l))
	deadline := time.Now().Add(2 * time.Second)
	for {
		g, _ := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "a"})
		if s := g.GetListener().GetStats(); s.GetDatagramsSent() == 2 && s.GetRateLimited() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters after the update: %v, want 2 sent and 1 rate-limited", g.GetListener().GetStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err = e.client.UpdateListener(ctx(t), &adminv1.UpdateListenerRequest{Id: "a", Limits: &adminv1.Limits{},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"address"}}})
	wantStatus(t, err, codes.InvalidArgument, "INVALID_ARGUMENT", "update_mask")
	_, err = e.client.UpdateListener(ctx(t), &adminv1.UpdateListenerRequest{Id: "nope", Limits: &adminv1.Limits{}})
	wantStatus(t, err, codes.NotFound, "LISTENER_NOT_FOUND")
}

// TestConfigFileRefusesImperativeChanges: with a configuration file in
// charge, every change but a dry run is FAILED_PRECONDITION; reads work.
func TestConfigFileRefusesImperativeChanges(t *testing.T) {
	m := manager.New(manager.Options{Workers: 1})
	t.Cleanup(func() { m.Shutdown(ctx(t)) })
	if _, err := m.Start(ctx(t), manager.Spec{ID: "a", Address: "127.0.0.1:0"}, ""); err != nil {
		t.Fatal(err)
	}
	e := serve(t, m, admin.Options{ConfigFile: "/etc/udpd/udpd.yaml"})
	calls := map[string]func() error{
		"StartListener": func() error {
			_, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "b", Address: "127.0.0.1:0"})
			return err
		},
		"StopListener": func() error {
			_, err := e.client.StopListener(ctx(t), &adminv1.StopListenerRequest{Id: "a"})
			return err
		},
		"RebindListener": func() error {
			_, err := e.client.RebindListener(ctx(t), &adminv1.RebindListenerRequest{Id: "a", Address: "127.0.0.1:0"})
			return err
		},
		"UpdateListener": func() error {
			_, err := e.client.UpdateListener(ctx(t), &adminv1.UpdateListenerRequest{Id: "a", Limits: &adminv1.Limits{}})
			return err
		},
		"ApplyConfig": func() error {
			_, err := e.client.ApplyConfig(ctx(t), &adminv1.ApplyConfigRequest{Prune: true})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			wantStatus(t, call(), codes.FailedPrecondition, "CONFIG_FILE_MANAGED")
		})
	}
	dry, err := e.client.ApplyConfig(ctx(t), &adminv1.ApplyConfigRequest{Prune: true, DryRun: true})
	if err != nil || len(dry.GetChanges()) != 1 {
		t.Errorf("dry run under a configuration file: %v, %v, want the plan (-a)", dry, err)
	}
	if ls, _ := m.List("", 0); len(ls) != 1 {
		t.Errorf("listeners: %d, want 1", len(ls))
	}
}

// hold binds a plain UDP socket on 127.0.0.1 for the rest of the test and
// returns its address.
func hold(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
