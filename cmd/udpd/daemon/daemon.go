// Package daemon is the udpd program: it parses flags, sets up logging,
// restores or creates the listeners, serves the admin API, and shuts all
// of it down in a fixed order on SIGINT or SIGTERM. main only calls Main;
// tests call Run.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/udpd/udpd/cmd/internal/buildinfo"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/state"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Main runs udpd with the process's arguments and exits.
func Main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs udpd until ctx is done or a signal arrives and returns its exit
// code: 0 after a clean shutdown, 1 on a failure, 2 on a usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "udpd: %v\n", err)
		return exitUsage
	}
	if cfg.version {
		fmt.Fprintf(stdout, "udpd %s\n", buildinfo.Version())
		return exitOK
	}
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})
	if cfg.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		fmt.Fprintf(stderr, "udpd: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func run(ctx context.Context, cfg *config, log *slog.Logger) (err error) {
	tlsCfg, err := adminTLS(cfg)
	if err != nil {
		return err
	}
	token, err := adminToken(cfg.adminTokenFile)
	if err != nil {
		return err
	}
	var store *state.File
	opts := manager.Options{
		Logger:       log,
		MaxListeners: cfg.maxListeners,
		Workers:      cfg.workers,
		Limits:       cfg.limits(),
		LoopPorts:    cfg.loopPortList,
	}
	if cfg.statePath != "" {
		store = &state.File{Path: cfg.statePath}
		opts.Store = store
		// One daemon per state file: a second would overwrite the first's.
		lock, err := store.Lock()
		if err != nil {
			return err
		}
		defer lock.Close()
	}
	specs, err := initialSpecs(cfg, store, log)
	if err != nil {
		return err
	}

	// Bind the admin API (and metrics) before touching the state file, so
	// a daemon that cannot serve them changes nothing.
	lis, err := adminListener(cfg, tlsCfg != nil)
	if err != nil {
		return err
	}
	defer lis.Close() // Serve closes it too; this covers failures before
	m := manager.New(opts)
	aopts := admin.Options{Logger: log, TLS: tlsCfg, Token: token}
	var ms *metricsServer
	if cfg.metrics != "" {
		ms = newMetrics(m)
		if err := ms.listen(cfg.metrics, metricsTLS(tlsCfg), cfg.metricsInsecure); err != nil {
			return err
		}
		defer ms.lis.Close()
		aopts.Unary = append(aopts.Unary, ms.grpc.UnaryServerInterceptor())
		aopts.Stream = append(aopts.Stream, ms.grpc.StreamServerInterceptor())
	}
	defer func() {
		// On a failed start-up, close whatever was bound.
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.drainTimeout)
			defer cancel()
			m.Shutdown(sctx)
		}
	}()
	started, err := m.Restore(ctx, specs)
	if err != nil {
		return err
	}

	srv := admin.NewServer(m, aopts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	if ms != nil {
		ms.grpc.InitializeMetrics(srv)
		go ms.serve(log)
		defer ms.http.Close()
	}

	adminAddr := lis.Addr().String()
	if lis.Addr().Network() == "unix" {
		adminAddr = "unix://" + adminAddr
	}
	addrs := make([]string, len(started))
	for i, l := range started {
		addrs[i] = l.ID + "=" + l.BoundAddress.String()
	}
	metricsAddr := ""
	if ms != nil {
		metricsAddr = ms.lis.Addr().String()
	}
	log.Info("udpd ready", "admin", adminAddr, "metrics", metricsAddr, "admin_tls", tlsCfg != nil, "admin_token", token != "", "listeners", strings.Join(addrs, " "), "state", cfg.statePath, "version", buildinfo.Version())
	if err := sdNotify("READY=1\nSTATUS=serving " + strconv.Itoa(len(started)) + " listeners"); err != nil {
		log.Warn("systemd notification failed", "err", err)
	}
	if cfg.readyFile != "" {
		if err := writeReady(cfg.readyFile, adminAddr, metricsAddr, started); err != nil {
			srv.Stop(0)
			return err
		}
	}

	select {
	case <-ctx.Done():
		log.Info("udpd shutting down", "reason", context.Cause(ctx))
		sdNotify("STOPPING=1")
	case err := <-served:
		return fmt.Errorf("admin API stopped: %w", err)
	}
	return shutdown(ctx, cfg, srv, m)
}

// shutdown stops udpd in this order, within --shutdown-timeout (plus at
// most 100 ms for step 3):
//  1. the admin API reports NOT_SERVING and ends WatchStats streams;
//  2. every listener answers what its sockets hold until they are empty,
//     then closes (the saved configuration is kept for --resume);
//  3. the admin server finishes running calls (GracefulStop) with what is
//     left of the deadline, then closes whatever is left (Stop).
func shutdown(ctx context.Context, cfg *config, srv *admin.Server, m *manager.Manager) error {
	deadline := time.Now().Add(cfg.drainTimeout)
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	srv.Drain()
	err := m.Shutdown(sctx)
	// Running admin calls get what is left of the same deadline (a
	// moment at least).
	srv.Stop(max(time.Until(deadline), 100*time.Millisecond))
	return err
}

// initialSpecs are the listeners to start: the saved ones with --resume
// (when the state file exists), else one per --listen flag.
func initialSpecs(cfg *config, store *state.File, log *slog.Logger) ([]manager.Spec, error) {
	if cfg.resume {
		if store == nil {
			return nil, errors.New("--resume needs --state")
		}
		if store.Exists() {
			specs, err := store.Load()
			if err != nil {
				return nil, err
			}
			log.Info("resuming saved listeners", "state", store.Path, "listeners", len(specs))
			if cfg.listenGiven {
				log.Warn("--listen ignored: --resume starts the saved listeners (add more with udpctl listeners start)")
			}
			return specs, nil
		}
		log.Info("no saved state yet; starting the --listen listeners", "state", store.Path)
	}
	specs := make([]manager.Spec, len(cfg.listen))
	for i, a := range cfg.listen {
		specs[i] = manager.Spec{Address: a}
	}
	return specs, nil
}

// writeReady writes the admin (and metrics) address and the listeners'
// bound addresses in the order they were started, one per line ("admin
// ADDR", "metrics ADDR", "listener ID ADDR"), atomically.
func writeReady(path, adminAddr, metricsAddr string, ls []manager.Listener) error {
	var b strings.Builder
	fmt.Fprintf(&b, "admin %s\n", adminAddr)
	if metricsAddr != "" {
		fmt.Fprintf(&b, "metrics %s\n", metricsAddr)
	}
	for _, l := range ls {
		fmt.Fprintf(&b, "listener %s %s\n", l.ID, l.BoundAddress)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}
