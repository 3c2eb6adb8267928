package admin

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// Upgrade timeouts.
const (
	DefaultUpgradeTimeout = 30 * time.Second
	maxUpgradeTimeout     = 5 * time.Minute
)

// UpgradeResult is what a hand-over to a new process did.
type UpgradeResult struct {
	OldPid, NewPid int
	ReadyAfter     time.Duration // from the request to the new process serving
	Listeners      int           // handed over
}

// Upgrader hands the daemon over to a new process; the udpd program
// implements it. Its errors wrap handoff.ErrFailed (the new process
// failed, this one serves on) or manager.ErrUpgrading (one is under way).
type Upgrader interface {
	Upgrade(ctx context.Context, timeout time.Duration) (UpgradeResult, error)
}

// DaemonService implements adminv1.DaemonServiceServer.
type DaemonService struct {
	adminv1.UnimplementedDaemonServiceServer
	up Upgrader
}

var _ adminv1.DaemonServiceServer = (*DaemonService)(nil)

// Register registers the service on g.
func (s *DaemonService) Register(g *grpc.Server) { adminv1.RegisterDaemonServiceServer(g, s) }

// Upgrade implements adminv1.DaemonServiceServer.
func (s *DaemonService) Upgrade(ctx context.Context, req *adminv1.UpgradeRequest) (*adminv1.UpgradeResponse, error) {
	if s.up == nil {
		return nil, withDetails(codes.Unimplemented, "UNIMPLEMENTED", errors.New("this udpd cannot upgrade itself"))
	}
	timeout, err := duration("timeout", req.GetTimeout())
	if err != nil {
		return nil, err
	}
	if timeout < 0 || timeout > maxUpgradeTimeout {
		return nil, invalid("timeout", timeout.String(), "must be from 0 (30s) to 5m")
	}
	if timeout == 0 {
		timeout = DefaultUpgradeTimeout
	}
	r, err := s.up.Upgrade(ctx, timeout)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.UpgradeResponse{
		OldPid:     int32(r.OldPid),
		NewPid:     int32(r.NewPid),
		ReadyAfter: durationpb.New(r.ReadyAfter),
		Listeners:  uint32(r.Listeners),
	}, nil
}
