package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

// Page sizes and watch intervals.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	defaultInterval = time.Second
	minInterval     = 100 * time.Millisecond
	maxInterval     = time.Hour
)

// Service implements adminv1.ListenerServiceServer over a manager.
type Service struct {
	adminv1.UnimplementedListenerServiceServer
	m       *manager.Manager
	smp     *sampler.Sampler // shares one reading per tick among WatchStats streams
	done    <-chan struct{}  // closed when the daemon shuts down: ends WatchStats
	version Version          // what GetVersion answers
	// why says why done was closed; nil: the daemon shuts down.
	why func() error

	configFile string // set: changes are refused (see Options.ConfigFile)

	watchMu   sync.Mutex
	watchSnap *manager.Snapshot                       // the last snapshot encoded for all listeners
	watchMsgs map[*manager.Snapshot]*grpc.PreparedMsg // its encodings, by the snapshot they follow (nil: complete)
}

var _ adminv1.ListenerServiceServer = (*Service)(nil)

// NewService returns the service; WatchStats streams read smp (which
// must be running), and closing done ends them with UNAVAILABLE.
func NewService(m *manager.Manager, smp *sampler.Sampler, done <-chan struct{}) *Service {
	return &Service{m: m, smp: smp, done: done}
}

// Register registers the service on g.
func (s *Service) Register(g *grpc.Server) { adminv1.RegisterListenerServiceServer(g, s) }

// StartListener implements adminv1.ListenerServiceServer.
func (s *Service) StartListener(ctx context.Context, req *adminv1.StartListenerRequest) (*adminv1.StartListenerResponse, error) {
	if req.GetAddress() == "" {
		return nil, invalid("address", "", "is required, e.g. 127.0.0.1:12000")
	}
	spec := manager.Spec{
		ID:      req.GetId(),
		Address: req.GetAddress(),
		Workers: int(req.GetWorkers()),
		Limits:  limitsFromProto(req.GetLimits()),
	}
	if s.configFile != "" {
		return nil, managedByFile(s.configFile)
	}
	l, err := s.m.Start(manager.IfVersion(ctx, req.GetConfigVersion()), spec, req.GetRequestId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.StartListenerResponse{Listener: listenerToProto(l)}, nil
}

// StopListener implements adminv1.ListenerServiceServer.
func (s *Service) StopListener(ctx context.Context, req *adminv1.StopListenerRequest) (*adminv1.StopListenerResponse, error) {
	drain, err := duration("drain_timeout", req.GetDrainTimeout())
	if err != nil {
		return nil, err
	}
	if err := manager.ValidateID(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	if s.configFile != "" {
		return nil, managedByFile(s.configFile)
	}
	l, err := s.m.Stop(manager.IfVersion(ctx, req.GetConfigVersion()), req.GetId(), drain)
	if err != nil {
		if req.GetAllowMissing() && isNotFound(err) {
			return &adminv1.StopListenerResponse{}, nil
		}
		return nil, toStatus(err)
	}
	return &adminv1.StopListenerResponse{Listener: listenerToProto(l)}, nil
}

// RebindListener implements adminv1.ListenerServiceServer.
func (s *Service) RebindListener(ctx context.Context, req *adminv1.RebindListenerRequest) (*adminv1.RebindListenerResponse, error) {
	drain, err := duration("drain_timeout", req.GetDrainTimeout())
	if err != nil {
		return nil, err
	}
	if err := manager.ValidateID(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	if req.GetAddress() == "" {
		return nil, invalid("address", "", "is required, e.g. 127.0.0.1:12001")
	}
	if s.configFile != "" {
		return nil, managedByFile(s.configFile)
	}
	l, err := s.m.Rebind(manager.IfVersion(ctx, req.GetConfigVersion()), req.GetId(), req.GetAddress(), drain)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.RebindListenerResponse{Listener: listenerToProto(l)}, nil
}

// GetListener implements adminv1.ListenerServiceServer.
func (s *Service) GetListener(_ context.Context, req *adminv1.GetListenerRequest) (*adminv1.GetListenerResponse, error) {
	if err := manager.ValidateID(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	l, err := s.m.Get(req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.GetListenerResponse{Listener: listenerToProto(l)}, nil
}

// ListListeners implements adminv1.ListenerServiceServer. Page tokens are
// opaque to clients: the last id of the previous page, encoded.
func (s *Service) ListListeners(_ context.Context, req *adminv1.ListListenersRequest) (*adminv1.ListListenersResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, invalid("page_size", strconv.Itoa(size), "must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	after, err := base64.RawURLEncoding.DecodeString(req.GetPageToken())
	if err == nil && len(after) > 0 {
		err = manager.ValidateID(string(after)) // tokens hold an id
	}
	if err != nil {
		return nil, invalid("page_token", req.GetPageToken(), "is not a token this server returned")
	}
	ls, more := s.m.List(string(after), size)
	resp := &adminv1.ListListenersResponse{Listeners: make([]*adminv1.Listener, len(ls))}
	for i, l := range ls {
		resp.Listeners[i] = listenerToProto(l)
	}
	if more {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(ls[len(ls)-1].ID))
	}
	return resp, nil
}

// GetStats implements adminv1.ListenerServiceServer.
func (s *Service) GetStats(_ context.Context, req *adminv1.GetStatsRequest) (*adminv1.GetStatsResponse, error) {
	if err := validateOptionalID(req.GetListenerId()); err != nil {
		return nil, err
	}
	now := time.Now()
	total, per, err := s.m.Stats(req.GetListenerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.GetStatsResponse{
		Time:      timestamppb.New(now),
		Total:     statsToProto(total),
		Listeners: perListenerToProto(per),
	}, nil
}

// WatchStats implements adminv1.ListenerServiceServer: a snapshot at the
// sampler's next tick, then one per interval. Every stream shares the
// sampler's readings (one per tick, however many streams) and, when it
// watches every listener, their encoding.
func (s *Service) WatchStats(req *adminv1.WatchStatsRequest, stream grpc.ServerStreamingServer[adminv1.WatchStatsResponse]) error {
	id := req.GetListenerId()
	if err := validateOptionalID(id); err != nil {
		return err
	}
	interval := defaultInterval
	if d := req.GetInterval(); d != nil {
		if err := d.CheckValid(); err != nil {
			return invalid("interval", d.String(), err.Error())
		}
		interval = min(max(d.AsDuration(), minInterval), maxInterval)
	}
	if id != "" {
		if _, err := s.m.Get(id); err != nil {
			return toStatus(err)
		}
	}
	w, err := s.smp.Watch(interval)
	if err != nil {
		return toStatus(err)
	}
	defer w.Close()
	var prev *manager.Snapshot // what this stream sent last, for changes_only
	for {
		select {
		case snap, ok := <-w.C():
			if !ok {
				return toStatus(fmt.Errorf("watch: %w", sampler.ErrStopped))
			}
			msg, err := s.watchMessage(stream, snap, prev, id)
			if err != nil {
				return toStatus(err)
			}
			if err := stream.SendMsg(msg); err != nil {
				return err
			}
			if req.GetChangesOnly() {
				prev = snap
			}
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-s.done:
			if s.why != nil {
				if err := s.why(); err != nil {
					return err
				}
			}
			return withDetails(codes.Unavailable, "SHUTTING_DOWN", errors.New("udpd is shutting down"))
		}
	}
}

// watchMessage is what a stream watching listener id (all when empty)
// sends for snap; prev is the snapshot it sent before, when it asked for
// changes only (nil: send every listener). For all listeners, a message is
// converted and encoded once per snapshot and prev, and the same bytes go
// to every stream: udpd registers no gRPC compressor
// (service/deps_test.go checks), so every stream encodes alike.
func (s *Service) watchMessage(stream grpc.ServerStream, snap, prev *manager.Snapshot, id string) (any, error) {
	if id != "" {
		l, ok := snap.Listener(id)
		if !ok {
			return nil, fmt.Errorf("stats %q: %w", id, manager.ErrNotFound)
		}
		resp := &adminv1.WatchStatsResponse{Time: timestamppb.New(snap.Time), Total: statsToProto(snap.Total)}
		if p, ok := prevListener(prev, id); ok && p.Stats == l.Stats {
			return resp, nil // unchanged
		}
		resp.Listeners = []*adminv1.ListenerStats{{ListenerId: l.ID, Stats: statsToProto(l.Stats)}}
		resp.Complete = true
		return resp, nil
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watchSnap != snap {
		s.watchSnap, s.watchMsgs = snap, make(map[*manager.Snapshot]*grpc.PreparedMsg)
	}
	if msg := s.watchMsgs[prev]; msg != nil {
		return msg, nil
	}
	since := prev
	if since != nil && !sameListeners(since, snap) {
		since = nil // started or stopped: send them all
		if msg := s.watchMsgs[nil]; msg != nil {
			s.watchMsgs[prev] = msg
			return msg, nil
		}
	}
	resp := &adminv1.WatchStatsResponse{Time: timestamppb.New(snap.Time), Total: statsToProto(snap.Total), Complete: since == nil}
	for i, l := range snap.Listeners {
		if since == nil || since.Listeners[i].Stats != l.Stats {
			resp.Listeners = append(resp.Listeners, &adminv1.ListenerStats{ListenerId: l.ID, Stats: statsToProto(l.Stats)})
		}
	}
	msg := new(grpc.PreparedMsg)
	if err := msg.Encode(stream, resp); err != nil {
		return nil, fmt.Errorf("watch: encode: %w", err)
	}
	s.watchMsgs[prev] = msg
	if since == nil {
		s.watchMsgs[nil] = msg
	}
	return msg, nil
}

// prevListener is listener id in prev, if prev is set and has it.
func prevListener(prev *manager.Snapshot, id string) (manager.ListenerStats, bool) {
	if prev == nil {
		return manager.ListenerStats{}, false
	}
	return prev.Listener(id)
}

// sameListeners reports whether a and b hold the same listeners, in the
// same order (both are ordered by id).
func sameListeners(a, b *manager.Snapshot) bool {
	return slices.EqualFunc(a.Listeners, b.Listeners, func(x, y manager.ListenerStats) bool { return x.ID == y.ID })
}

func duration(field string, d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalid(field, d.String(), err.Error())
	}
	return d.AsDuration(), nil
}

// validateOptionalID checks a listener id that may be empty ("all").
func validateOptionalID(id string) error {
	if id == "" {
		return nil
	}
	if err := manager.ValidateID(id); err != nil {
		return toStatus(err)
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, manager.ErrNotFound) }
