package admin

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger // nil discards
	// TLS, when set, serves the API over TLS (with client certificates if
	// it asks for them).
	TLS *tls.Config
	// Token, when set, must come with every call as "authorization: Bearer
	// TOKEN", except health checks and reflection, which stay open so
	// probes and grpcurl's discovery work. A wrong or missing token is
	// UNAUTHENTICATED and changes nothing.
	Token string
	// Unary and Stream interceptors run first, before logging (metrics,
	// say).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// Sampler, when set, is the running sampler WatchStats streams share
	// (the daemon's, which also feeds the status page). Without one,
	// the server runs its own, with the default watcher cap, until Stop.
	Sampler *sampler.Sampler
	// Version is what GetVersion answers.
	Version Version
	// ConfigFile, when set, names the configuration file that manages the
	// listeners (udpd --config): calls that change them (StartListener,
	// StopListener, RebindListener, UpdateListener and ApplyConfig other
	// than a dry run) fail with FAILED_PRECONDITION, reason
	// CONFIG_FILE_MANAGED, because the next reload would undo them.
	ConfigFile string
	// Upgrader, when set, serves DaemonService.Upgrade.
	Upgrader Upgrader
}

// Server is the admin gRPC server: the ListenerService, grpc.health.v1
// (SERVING until shutdown) and server reflection (v1 and v1alpha, so
// grpcurl needs no proto files), behind logging and recovery interceptors.
type Server struct {
	grpc        *grpc.Server
	health      *health.Server
	done        chan struct{}
	doneOnce    sync.Once
	stopSampler context.CancelFunc // ends the server's own sampler
	newPid      atomic.Int64       // set by DrainForUpgrade
}

// NewServer builds the admin server over m.
func NewServer(m *manager.Manager, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	logger := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in admin call", "panic", p, "stack", string(debug.Stack()))
		return withDetails(codes.Internal, "INTERNAL", errors.New("internal error"))
	})
	unary := append(slices.Clip(opts.Unary), logging.UnaryServerInterceptor(logger, logOpts...))
	stream := append(slices.Clip(opts.Stream), logging.StreamServerInterceptor(logger, logOpts...))
	if opts.Token != "" {
		check := checkToken(opts.Token)
		unary = append(unary, selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(check), needsToken))
		stream = append(stream, selector.StreamServerInterceptor(auth.StreamServerInterceptor(check), needsToken))
	}
	unary = append(unary, recovery.UnaryServerInterceptor(rec))
	stream = append(stream, recovery.StreamServerInterceptor(rec))
	sopts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...)}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	g := grpc.NewServer(sopts...)
	s := &Server{grpc: g, health: health.NewServer(), done: make(chan struct{}), stopSampler: func() {}}
	smp := opts.Sampler
	if smp == nil {
		var ctx context.Context
		ctx, s.stopSampler = context.WithCancel(context.Background())
		smp = sampler.New(m, sampler.Options{})
		go smp.Run(ctx)
	}
	svc := NewService(m, smp, s.done)
	svc.version = opts.Version
	svc.configFile = opts.ConfigFile
	svc.why = s.drainReason
	svc.Register(g)
	(&DaemonService{up: opts.Upgrader}).Register(g)
	healthpb.RegisterHealthServer(g, s.health)
	s.health.SetServingStatus(adminv1.ListenerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	reflection.Register(g)
	return s
}

// needsToken exempts health checks and reflection from the token.
var needsToken = selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
	switch c.Service {
	case healthpb.Health_ServiceDesc.ServiceName,
		"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection":
		return false
	}
	return true
})

// checkToken compares the bearer token in constant time.
func checkToken(want string) auth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		got, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, withDetails(codes.Unauthenticated, "UNAUTHENTICATED",
				errors.New("this udpd needs \"authorization: Bearer TOKEN\" (udpctl --token-file or UDPCTL_TOKEN)"))
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return nil, withDetails(codes.Unauthenticated, "UNAUTHENTICATED", errors.New("wrong token"))
		}
		return ctx, nil
	}
}

// GetServiceInfo reports the registered services (for metrics that
// initialise a series per method).
func (s *Server) GetServiceInfo() map[string]grpc.ServiceInfo { return s.grpc.GetServiceInfo() }

// Serve accepts admin connections on lis until Stop.
func (s *Server) Serve(lis net.Listener) error { return s.grpc.Serve(lis) }

// Drain marks the server NOT_SERVING and ends every WatchStats stream, so
// health checkers and watchers learn of the shutdown first; unary calls
// still work (answered with UNAVAILABLE by a closed manager).
func (s *Server) Drain() {
	s.doneOnce.Do(func() {
		s.health.Shutdown()
		close(s.done)
	})
}

// Serving reports whether the server serves: true until Drain.
func (s *Server) Serving() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// DrainForUpgrade is Drain for a hand-over to process newPid: WatchStats
// streams end with UNAVAILABLE (UPGRADING), telling clients to reconnect.
func (s *Server) DrainForUpgrade(newPid int) {
	s.newPid.Store(int64(newPid))
	s.Drain()
}

func (s *Server) drainReason() error {
	pid := s.newPid.Load()
	if pid == 0 {
		return nil
	}
	return withDetails(codes.Unavailable, "UPGRADING",
		fmt.Errorf("udpd handed over to a new process (pid %d): reconnect to go on watching", pid))
}

// Stop drains the server, lets running calls finish for up to timeout
// (GracefulStop), then closes every connection (Stop).
func (s *Server) Stop(timeout time.Duration) {
	s.Drain()
	t := time.AfterFunc(timeout, s.grpc.Stop)
	defer t.Stop()
	s.grpc.GracefulStop()
	s.stopSampler()
}
