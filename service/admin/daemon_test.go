package admin_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/handoff"
	"github.com/udpd/udpd/service/manager"
)

// fakeUpgrader records the timeout it was given and answers as told.
type fakeUpgrader struct {
	got chan time.Duration
	res admin.UpgradeResult
	err error
}

func (f *fakeUpgrader) Upgrade(_ context.Context, timeout time.Duration) (admin.UpgradeResult, error) {
	f.got <- timeout
	return f.res, f.err
}

func TestUpgradeCall(t *testing.T) {
	res := admin.UpgradeResult{OldPid: 10, NewPid: 11, ReadyAfter: 42 * time.Millisecond, Listeners: 3}
	for _, tc := range []struct {
		name        string
		timeout     *durationpb.Duration
		err         error
		wantTimeout time.Duration // 0: the upgrader is not called
		code        codes.Code
		reason      string
		fields      []string
	}{
		{"default timeout", nil, nil, admin.DefaultUpgradeTimeout, codes.OK, "", nil},
		{"own timeout", durationpb.New(time.Second), nil, time.Second, codes.OK, "", nil},
		{"timeout too long", durationpb.New(time.Hour), nil, 0, codes.InvalidArgument, "INVALID_ARGUMENT", []string{"timeout"}},
		{"negative timeout", durationpb.New(-time.Second), nil, 0, codes.InvalidArgument, "INVALID_ARGUMENT", []string{"timeout"}},
		{"new process failed", nil, fmt.Errorf("upgrade: new udpd (pid 11) exited: %w", handoff.ErrFailed), admin.DefaultUpgradeTimeout, codes.FailedPrecondition, "UPGRADE_FAILED", nil},
		{"one under way", nil, fmt.Errorf("upgrade: %w", manager.ErrUpgrading), admin.DefaultUpgradeTimeout, codes.Unavailable, "UPGRADING", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &fakeUpgrader{got: make(chan time.Duration, 1), res: res, err: tc.err}
			e := serve(t, manager.New(manager.Options{}), admin.Options{Upgrader: up})
			resp, err := adminv1.NewDaemonServiceClient(e.conn).Upgrade(ctx(t), &adminv1.UpgradeRequest{Timeout: tc.timeout})
			select {
			case got := <-up.got:
				if got != tc.wantTimeout {
					t.Errorf("upgrader got timeout %v, want %v", got, tc.wantTimeout)
				}
			default:
				if tc.wantTimeout != 0 {
					t.Errorf("upgrader not called")
				}
			}
			if tc.code != codes.OK {
				wantStatus(t, err, tc.code, tc.reason, tc.fields...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := &adminv1.UpgradeResponse{OldPid: 10, NewPid: 11, ReadyAfter: durationpb.New(42 * time.Millisecond), Listeners: 3}
			if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no upgrader", func(t *testing.T) {
		e := serve(t, manager.New(manager.Options{}), admin.Options{})
		_, err := adminv1.NewDaemonServiceClient(e.conn).Upgrade(ctx(t), &adminv1.UpgradeRequest{})
		wantStatus(t, err, codes.Unimplemented, "UNIMPLEMENTED")
	})
}

// TestWatchEndsForUpgrade: a stream open when the daemon hands over ends
// with UNAVAILABLE, reason UPGRADING.
func TestWatchEndsForUpgrade(t *testing.T) {
	e := newEnv(t, manager.Options{})
	stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	e.srv.DrainForUpgrade(4242)
	for err == nil {
		_, err = stream.Recv()
	}
	wantStatus(t, err, codes.Unavailable, "UPGRADING")
}
