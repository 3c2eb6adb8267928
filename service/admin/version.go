package admin

import (
	"context"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// Version identifies the daemon's build; the daemon fills it in (the
// service packages do not know how udpd was built).
type Version struct {
	Version   string // "v1.2.0", or "devel"
	Revision  string // the full commit hash, or "unknown"
	GoVersion string // "go1.26.8"
}

// GetVersion implements adminv1.ListenerServiceServer.
func (s *Service) GetVersion(context.Context, *adminv1.GetVersionRequest) (*adminv1.GetVersionResponse, error) {
	return &adminv1.GetVersionResponse{Version: s.version.Version, Revision: s.version.Revision, GoVersion: s.version.GoVersion}, nil
}
