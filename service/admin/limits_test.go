package admin_test

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/manager"
)

func TestStartListenerLimits(t *testing.T) {
	defaults := manager.Limits{PerSecond: 100, Burst: 20}
	e := newEnv(t, manager.Options{Limits: defaults})

	// Without limits in the request, the daemon's defaults are in force.
	got := e.start(t, &adminv1.StartListenerRequest{Id: "dflt", Address: "127.0.0.1:0"})
	want := &adminv1.Limits{PerSecond: 100, Burst: 20}
	if diff := cmp.Diff(want, got.GetLimits(), protocmp.Transform()); diff != "" {
		t.Errorf("default limits (-want +got):\n%s", diff)
	}

	// Limits in the request replace them, and are enforced: with loopback
	// limited to a burst of 1, the second datagram goes unanswered.
	own := &adminv1.Limits{PerSecond: 0.001, Burst: 1, LimitLoopback: true, MaxReplyRatio: 2}
	got = e.start(t, &adminv1.StartListenerRequest{Id: "own", Address: "127.0.0.1:0", Limits: own})
	if diff := cmp.Diff(own, got.GetLimits(), protocmp.Transform()); diff != "" {
		t.Errorf("own limits (-want +got):\n%s", diff)
	}
	addr := boundAddr(t, got)
	mustEcho(t, addr, "first")
	mustNotEcho(t, addr)

	// Starting it again with other limits is a conflict, not a silent change.
	_, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "own", Address: "127.0.0.1:0"})
	wantStatus(t, err, codes.AlreadyExists, "LISTENER_ALREADY_EXISTS")
}

func TestStartListenerBadLimits(t *testing.T) {
	e := newEnv(t, manager.Options{})
	tests := []struct {
		name   string
		limits *adminv1.Limits
		field  string
	}{
		{"negative rate", &adminv1.Limits{PerSecond: -1}, "limits.per_second"},
		{"NaN rate", &adminv1.Limits{PerSecond: math.NaN()}, "limits.per_second"},
		{"infinite bytes", &adminv1.Limits{BytesPerSecond: math.Inf(1)}, "limits.bytes_per_second"},
		{"ratio below 1", &adminv1.Limits{MaxReplyRatio: 0.5}, "limits.max_reply_ratio"},
		{"huge burst", &adminv1.Limits{Burst: math.MaxUint32}, "limits.burst"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.StartListener(ctx(t), &adminv1.StartListenerRequest{Id: "x", Address: "127.0.0.1:0", Limits: tc.limits})
			wantStatus(t, err, codes.InvalidArgument, "INVALID_ARGUMENT", tc.field)
			if ls, _ := e.m.List("", 0); len(ls) != 0 {
				t.Errorf("a rejected start left %d listeners", len(ls))
			}
		})
	}
}
