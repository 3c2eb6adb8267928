// Package daemon is the udpd program: it parses flags, sets up logging,
// restores or creates the listeners, serves the admin API, and shuts all
// of it down in a fixed order on SIGINT or SIGTERM. main only calls Main;
// tests call Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/udpd/udpd/cmd/internal/buildinfo"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
	"github.com/udpd/udpd/service/state"
	"github.com/udpd/udpd/service/status"
)

// statusHistory is how far back the status page's charts go.
const statusHistory = 15 * time.Minute

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// handOverWait bounds how long a udpd started by an upgrade waits for the
// old one's counters once it serves.
const handOverWait = 10 * time.Second

// Main runs udpd with the process's arguments and exits.
func Main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs udpd until ctx is done or a signal arrives and returns its exit
// code: 0 after a clean shutdown, 1 on a failure, 2 on a usage error.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "udpd: %v\nRun 'udpd --help' for usage.\n", err)
		return exitUsage
	}
	if cfg.version {
		fmt.Fprintf(stdout, "udpd %s\n", buildinfo.Get())
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

// run starts udpd, serves until ctx is done, and shuts it down.
func run(ctx context.Context, cfg *config, log *slog.Logger) error {
	// SIGHUP is caught before udpd says it is ready, so that one sent
	// right after (which reloads --config) never kills it.
	var hup chan os.Signal
	if cfg.configFile != "" {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	d, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.configFile != "" {
		rctx, stopReload := context.WithCancel(ctx)
		reloaded := make(chan struct{})
		defer func() { stopReload(); <-reloaded }()
		r := d.reloader()
		go func() {
			defer close(reloaded)
			if err := r.run(rctx, hup); err != nil {
				log.Error("configuration reloads stopped; SIGHUP no longer reloads", "err", err)
			}
		}()
	}
	usr2 := make(chan os.Signal, 1)
	notifyUpgrade(usr2)
	defer signal.Stop(usr2)
	for {
		select {
		case <-ctx.Done():
			// An upgrade under way ends first, one way or the other.
			d.upMu.Lock()
			d.upMu.Unlock()
			if d.leaving.Load() {
				return d.afterUpgrade()
			}
			log.Info("udpd shutting down", "reason", context.Cause(ctx))
			return d.shutdown(ctx)
		case <-usr2:
			go func() {
				if _, err := d.Upgrade(context.WithoutCancel(ctx), admin.DefaultUpgradeTimeout); err != nil {
					log.Error("SIGUSR2: upgrade failed", "err", err)
				}
			}()
		case <-d.handedOver:
			return d.afterUpgrade()
		case err := <-d.served:
			if d.leaving.Load() {
				d.served = nil // stopped for the hand-over
				continue
			}
			// The admin API is gone; stop the rest in the same order.
			return errors.Join(fmt.Errorf("admin API stopped: %w", err), d.shutdown(context.WithoutCancel(ctx)))
		}
	}
}

// daemon is a started udpd: what start bound and started, for shutdown.
type daemon struct {
	cfg     *config
	log     *slog.Logger
	m       *manager.Manager
	smp     *sampler.Sampler // shared counter readings: WatchStats, the status page
	srv     *admin.Server
	metrics *metricsServer // nil without --metrics
	lock    io.Closer      // the state file's lock, nil without --state

	stopSampler context.CancelFunc
	steps       shutdownSteps
	adminLis    net.Listener

	adminAddr   string             // as udpctl --admin takes it
	metricsAddr string             // "" without --metrics
	started     []manager.Listener // the listeners start started, in order
	served      chan error         // the admin server's Serve result

	upMu       sync.Mutex    // held by an upgrade
	leaving    atomic.Bool   // an upgrade succeeded: the new process serves
	handedOver chan struct{} // closed once the upgrade has handed over
	configSum  [32]byte      // digest of the --config file as started
}

// start binds the admin API (and metrics), starts the listeners, serves,
// tells systemd and the ready file, and returns the running daemon. On
// an error it releases whatever it had taken and changes no state.
func start(ctx context.Context, cfg *config, log *slog.Logger) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, handedOver: make(chan struct{})}
	in, err := inherit()
	if err != nil {
		return nil, err
	}
	if in != nil {
		// Started by an upgrade: the old udpd is told why this one fails.
		defer func() {
			if err != nil {
				in.fail(err)
			}
		}()
		defer closeFiles(in.files) // the listeners hold duplicates
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(cleanup) {
				f()
			}
		}
	}()
	tlsCfg, err := adminTLS(cfg)
	if err != nil {
		return nil, err
	}
	token, err := adminToken(cfg.adminTokenFile)
	if err != nil {
		return nil, err
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
		if store, err = state.Open(cfg.statePath); err != nil {
			return nil, err
		}
		opts.Store = store
		// One daemon per state file: a second would overwrite the first's.
		// After an upgrade the old udpd's lock is this one's.
		var lock io.Closer
		if in != nil {
			lock, err = in.lock()
		} else {
			lock, err = store.Lock()
		}
		if err != nil {
			return nil, err
		}
		d.lock = lock
		cleanup = append(cleanup, func() { lock.Close() })
	}
	var specs []manager.Spec
	var adopted []manager.Adopted
	if in != nil {
		// The listeners are the old udpd's, not those of the flags or the
		// state file.
		adopted = in.adopted
	} else {
		resumed := cfg.resume && store != nil && store.Exists()
		if cfg.configFile != "" {
			// The file says what runs: it wins over --resume.
			if specs, d.configSum, err = readConfigFile(cfg.configFile); err != nil {
				return nil, err
			}
			if cfg.resume {
				log.Warn("--resume ignored: --config says which listeners run", "config", cfg.configFile)
			}
			resumed = false
		} else if specs, err = initialSpecs(cfg, store, log); err != nil {
			return nil, err
		}
		var actFiles []*os.File
		adopted, actFiles, err = activatedListeners()
		if err != nil {
			return nil, err
		}
		defer closeFiles(actFiles) // the listeners hold duplicates
		specs = mergeActivated(adopted, specs, !cfg.listenGiven && !resumed && cfg.configFile == "", log)
	}

	// Bind the admin API (and metrics) before touching the state file, so
	// a daemon that cannot serve them changes nothing.
	var lis net.Listener
	if in != nil {
		lis, err = in.listener("admin")
	} else {
		lis, err = adminListener(cfg, tlsCfg != nil)
	}
	if err != nil {
		return nil, err
	}
	d.adminLis = lis
	cleanup = append(cleanup, func() { lis.Close() })
	d.m = manager.New(opts)
	// One sampler reads the counters for every WatchStats stream and
	// keeps the status page's history.
	sopts := sampler.Options{MaxWatchers: cfg.maxWatchers}
	if cfg.metrics != "" {
		sopts.History = statusHistory
	}
	d.smp = sampler.New(d.m, sopts)
	sctx, stopSampler := context.WithCancel(context.WithoutCancel(ctx))
	d.stopSampler = stopSampler
	cleanup = append(cleanup, stopSampler)
	go d.smp.Run(sctx)
	bi := buildinfo.Get()
	aopts := admin.Options{Logger: log, TLS: tlsCfg, Token: token, Sampler: d.smp,
		Version:  admin.Version{Version: bi.Version, Revision: bi.Revision, GoVersion: bi.GoVersion},
		Upgrader: d}
	if cfg.configFile != "" && !cfg.allowImperative {
		aopts.ConfigFile = cfg.configFile
	}
	if cfg.metrics != "" {
		ms := newMetrics(d.m)
		page := status.Handler(status.Options{Sampler: d.smp, Listeners: d.m.Describe, Version: buildinfo.Version(), Start: time.Now(), Health: d.health})
		var err error
		if in != nil {
			var mlis net.Listener
			if mlis, err = in.listener("metrics"); err == nil {
				ms.serveOn(mlis, metricsTLS(tlsCfg), page)
			}
		} else {
			err = ms.listen(cfg.metrics, metricsTLS(tlsCfg), cfg.metricsInsecure, page)
		}
		if err != nil {
			return nil, err
		}
		d.metrics = ms
		cleanup = append(cleanup, func() { ms.lis.Close() })
		aopts.Unary = append(aopts.Unary, ms.grpc.UnaryServerInterceptor())
		aopts.Stream = append(aopts.Stream, ms.grpc.StreamServerInterceptor())
		d.metricsAddr = ms.lis.Addr().String()
	}
	cleanup = append(cleanup, func() {
		// Close whatever listener was bound.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.drainTimeout)
		defer cancel()
		d.m.Shutdown(sctx)
	})
	d.started, err = d.m.Adopt(adopted)
	if err != nil {
		return nil, err
	}
	restored, err := d.m.Restore(ctx, specs)
	if err != nil {
		return nil, err
	}
	d.started = append(d.started, restored...)
	if in != nil {
		// Serving: the old udpd stops reading now, and sends its counters.
		// Admin calls wait (in the listening socket's backlog) until they
		// are in, so totals never go back.
		if err := in.parent.Ready(); err != nil {
			return nil, err
		}
		closeFiles(in.files)
		in.files = nil
		wctx, cancel := context.WithTimeout(ctx, handOverWait)
		var c manager.Counters
		err := in.parent.Wait(wctx, &c)
		cancel()
		if err != nil {
			log.Warn("the old udpd's counters did not arrive; totals restart", "err", err)
		} else {
			d.m.Continue(c)
		}
		log.Info("took over from the old udpd", "old_pid", in.inv.OldPid, "listeners", len(d.started))
		in = nil // nothing to tell the old udpd any more
	}

	d.srv = admin.NewServer(d.m, aopts)
	d.steps = shutdownSteps{notServing: d.srv.Drain, drain: d.m.Shutdown, stop: d.srv.Stop}
	d.served = make(chan error, 1)
	go func() { d.served <- d.srv.Serve(lis) }()
	cleanup = append(cleanup, func() { d.srv.Stop(0) })
	if d.metrics != nil {
		d.metrics.grpc.InitializeMetrics(d.srv)
		go d.metrics.serve(log)
		cleanup = append(cleanup, func() { d.metrics.http.Close() })
	}

	d.adminAddr = lis.Addr().String()
	if lis.Addr().Network() == "unix" {
		d.adminAddr = "unix://" + d.adminAddr
	}
	addrs := make([]string, len(d.started))
	for i, l := range d.started {
		addrs[i] = l.ID + "=" + l.BoundAddress.String()
	}
	log.Info("udpd ready", "admin", d.adminAddr, "metrics", d.metricsAddr, "admin_tls", tlsCfg != nil, "admin_token", token != "", "listeners", strings.Join(addrs, " "), "state", cfg.statePath, "version", bi.Version, "revision", bi.Revision)
	if err := sdNotify("READY=1\nSTATUS=serving " + strconv.Itoa(len(d.started)) + " listeners"); err != nil {
		log.Warn("systemd notification failed", "err", err)
	}
	if cfg.readyFile != "" {
		if err := writeReady(cfg.readyFile, d.adminAddr, d.metricsAddr, d.started); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// reloader applies --config again on SIGHUP and when it changes, and
// rewrites the ready file after each reload that succeeded.
func (d *daemon) reloader() *reloader {
	r := &reloader{path: d.cfg.configFile, m: d.m, log: d.log, last: d.configSum}
	if d.cfg.readyFile != "" {
		r.after = func(_ manager.Plan, err error) {
			if err != nil {
				return
			}
			ls, _ := d.m.List("", 0)
			if err := writeReady(d.cfg.readyFile, d.adminAddr, d.metricsAddr, ls); err != nil {
				d.log.Warn("ready file not rewritten after the reload", "err", err)
			}
		}
	}
	return r
}

// health is the admin API's health for the status page: SERVING until
// shutdown begins.
func (d *daemon) health() string {
	if d.srv == nil || !d.srv.Serving() {
		return "NOT_SERVING"
	}
	return "SERVING"
}

// shutdownSteps are the first three steps of shutdown, as functions so
// that a test can watch their order and what each is given.
type shutdownSteps struct {
	notServing func()                      // (*admin.Server).Drain
	drain      func(context.Context) error // (*manager.Manager).Shutdown
	stop       func(grace time.Duration)   // (*admin.Server).Stop
}

// shutdown stops udpd in this order, within --shutdown-delay plus
// --shutdown-timeout (plus at most 100 ms for step 3), counted from the
// call; ctx may be done already (it is, after a signal): only its values
// are used.
//  1. the admin API reports NOT_SERVING and ends WatchStats streams; the
//     listeners go on answering for --shutdown-delay, or until a second
//     SIGINT or SIGTERM;
//  2. every listener answers what its sockets hold until they are empty,
//     then closes (the saved configuration is kept for --resume);
//  3. the admin server finishes running calls (GracefulStop) with what is
//     left of the deadline, then closes whatever is left (Stop);
//  4. the sampler stops, the metrics server closes and the state file's
//     lock is released.
func (d *daemon) shutdown(ctx context.Context) error {
	sdNotify("STOPPING=1")
	d.steps.notServing()
	if d.cfg.shutdownDelay > 0 {
		d.linger(d.cfg.shutdownDelay)
	}
	deadline := time.Now().Add(d.cfg.drainTimeout)
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	err := d.steps.drain(sctx)
	// Running admin calls get what is left of the same deadline (a
	// moment at least).
	d.steps.stop(max(time.Until(deadline), 100*time.Millisecond))
	d.stopSampler()
	if d.metrics != nil {
		d.metrics.http.Close()
	}
	if d.lock != nil {
		d.lock.Close()
	}
	return err
}

// linger keeps the listeners answering, while health says NOT_SERVING,
// for delay or until a second SIGINT or SIGTERM: time for the health
// checkers of load balancers and anycast routers to stop sending here,
// so that what they send meanwhile is still answered.
func (d *daemon) linger(delay time.Duration) {
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(again)
	d.log.Info("answering on while health checkers see NOT_SERVING", "shutdown_delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case s := <-again:
		d.log.Info("shutdown delay cut short", "signal", s.String())
	}
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
