package admin

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
)

func listenerToProto(l manager.Listener) *adminv1.Listener {
	p := &adminv1.Listener{
		Id:         l.ID,
		Address:    l.Address,
		State:      stateToProto(l.State),
		Generation: l.Generation,
		CreateTime: timestamppb.New(l.Created),
		BindTime:   timestamppb.New(l.Bound),
		Workers:    uint32(l.Workers),
		Stats:      statsToProto(l.Stats),
		Limits:     limitsToProto(l.Limits),
	}
	if l.BoundAddress.IsValid() {
		p.BoundAddress = l.BoundAddress.String()
	}
	return p
}

func stateToProto(s manager.State) adminv1.Listener_State {
	switch s {
	case manager.StateRunning:
		return adminv1.Listener_STATE_RUNNING
	case manager.StateStopped:
		return adminv1.Listener_STATE_STOPPED
	case manager.StateDraining:
		return adminv1.Listener_STATE_DRAINING
	}
	return adminv1.Listener_STATE_UNSPECIFIED
}

func statsToProto(s listener.Stats) *adminv1.Stats {
	return &adminv1.Stats{
		DatagramsReceived: s.DatagramsReceived,
		DatagramsSent:     s.DatagramsSent,
		BytesReceived:     s.BytesReceived,
		BytesSent:         s.BytesSent,
		RepliesTooLarge:   s.RepliesTooLarge,
		SendErrors:        s.SendErrors,
		ReadErrors:        s.ReadErrors,
		KernelDrops:       s.KernelDrops,
		LoopBlocked:       s.LoopBlocked,
		RateLimited:       s.RateLimited,
		StartTime:         timestamppb.New(s.Start),
	}
}

func perListenerToProto(per []manager.ListenerStats) []*adminv1.ListenerStats {
	out := make([]*adminv1.ListenerStats, len(per))
	for i, p := range per {
		out[i] = &adminv1.ListenerStats{ListenerId: p.ID, Stats: statsToProto(p.Stats)}
	}
	return out
}

func limitsToProto(l manager.Limits) *adminv1.Limits {
	return &adminv1.Limits{
		PerSecond:      l.PerSecond,
		Burst:          uint32(l.Burst),
		BytesPerSecond: l.BytesPerSecond,
		BytesBurst:     uint32(l.BytesBurst),
		LimitLoopback:  l.LimitLoopback,
		MaxReplyRatio:  l.MaxReplyRatio,
	}
}

// limitsFromProto returns nil for an unset message: the daemon's defaults.
func limitsFromProto(p *adminv1.Limits) *manager.Limits {
	if p == nil {
		return nil
	}
	return &manager.Limits{
		PerSecond:      p.GetPerSecond(),
		Burst:          int(p.GetBurst()),
		BytesPerSecond: p.GetBytesPerSecond(),
		BytesBurst:     int(p.GetBytesBurst()),
		LimitLoopback:  p.GetLimitLoopback(),
		MaxReplyRatio:  p.GetMaxReplyRatio(),
	}
}
