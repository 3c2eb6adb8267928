package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

// config is what the command line says.
type config struct {
	listen    []string
	admin     string
	statePath string
	resume    bool
	// configFile, when set, is the declarative configuration: the
	// listeners to run, reloaded on SIGHUP and when it changes.
	configFile      string
	allowImperative bool
	workers         int
	maxListeners    int
	maxWatchers     int
	drainTimeout    time.Duration
	shutdownDelay   time.Duration
	logLevel        slog.Level
	logFormat       string
	readyFile       string
	version         bool
	help            bool

	adminTLSCert   string
	adminTLSKey    string
	adminClientCA  string
	adminInsecure  bool
	adminTokenFile string

	rateLimit      float64
	rateBurst      int
	rateLimitBytes float64
	limitLoopback  bool
	maxReplyRatio  float64
	loopPorts      string
	loopPortList   []uint16
	listenGiven    bool

	metrics         string
	metricsInsecure bool
}

// limits are the default limits of listeners, from the flags.
func (c *config) limits() manager.Limits {
	return manager.Limits{
		PerSecond:      c.rateLimit,
		Burst:          c.rateBurst,
		BytesPerSecond: c.rateLimitBytes,
		LimitLoopback:  c.limitLoopback,
		MaxReplyRatio:  c.maxReplyRatio,
	}
}

type listFlag struct{ vals *[]string }

func (f listFlag) String() string {
	if f.vals == nil {
		return ""
	}
	return strings.Join(*f.vals, ",")
}

func (f listFlag) Set(s string) error {
	*f.vals = append(*f.vals, s)
	return nil
}

func (f listFlag) Type() string { return "host:port" }

// envPrefix starts the environment variable of every flag: --rate-limit
// is also UDPD_RATE_LIMIT.
const envPrefix = "UDPD_"

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// notFromEnv are the flags that are actions, not settings: an UDPD_VERSION
// left in a container's environment must not turn udpd into a version
// printer.
var notFromEnv = map[string]bool{"help": true, "version": true}

// defaultStatePath is $XDG_STATE_HOME/udpd/state.json, or
// ~/.local/state/udpd/state.json; under systemd, $STATE_DIRECTORY wins.
func defaultStatePath() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return filepath.Join(strings.Split(d, ":")[0], "state.json")
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "udpd", "state.json")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "udpd", "state.json")
	}
	return "udpd-state.json"
}

// The parts of the usage, shared by --help and the man page (Command).
const (
	usageIntro = `udpd answers every UDP datagram with its uppercase, on any number of
listeners managed at run time over a gRPC admin API (see udpctl).

With no flags it serves 127.0.0.1:12000 and the admin API on
127.0.0.1:50051. With --resume it starts the listeners saved in the state
file instead (the --listen ones on the first run, when there is none).
Under systemd socket activation (LISTEN_FDS) each passed socket is a
listener named by its FileDescriptorName.

SIGINT and SIGTERM shut udpd down, answering what is queued. SIGUSR2 (or
'udpctl daemon upgrade') hands every socket to a new process of the binary
at udpd's path, losing nothing; if that process fails, udpd serves on.`
	usageExamples = `  udpd
  udpd --listen 127.0.0.1:12000 --listen '[::1]:12000' --metrics 127.0.0.1:9112
  udpd --resume --admin unix:///run/udpd/admin.sock --log-format json
  udpd --listen 0.0.0.0:12000 --rate-limit 100 --admin-token-file /etc/udpd/token
  UDPD_ADMIN=unix:///run/udpd/admin.sock UDPD_LISTEN=127.0.0.1:12000,[::1]:12000 udpd`
	usageEnvironment = `Every flag except --help and --version can also be set by an environment
variable: UDPD_ and the flag's name in capitals with "-" as "_"
(UDPD_ADMIN, UDPD_RATE_LIMIT, UDPD_RESUME=true). A flag on the command
line wins over its variable. UDPD_LISTEN takes a comma-separated list.`
)

var usageText = "Usage: udpd [flags]\n\n" + usageIntro + "\n\nExamples:\n" + usageExamples +
	"\n\nEnvironment:\n" + indent(usageEnvironment) + "\n\nFlags:\n"

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// errHelp is parseFlags' answer to --help, after it printed the usage.
var errHelp = errors.New("help requested")

// stateDefault says what --state defaults to, for the man page, which
// must not show the home directory of whoever generated it.
const stateDefault = "$STATE_DIRECTORY/state.json under systemd, else $XDG_STATE_HOME/udpd/state.json or ~/.local/state/udpd/state.json"

// Command describes udpd as a cobra command with the flags udpd parses,
// for generating its man page (cmd/internal/mangen). udpd itself does not
// run through cobra.
func Command() *cobra.Command {
	fs, _ := newFlagSet(&config{})
	fs.Lookup("state").DefValue = stateDefault
	cmd := &cobra.Command{
		Use:               "udpd [flags]",
		Short:             "UDP uppercase echo daemon with listeners managed over gRPC",
		Long:              usageIntro + "\n\n" + usageEnvironment + "\n\nSee udpctl(1) for the client, and the README for the admin API, the state file, metrics and the shutdown order.",
		Example:           usageExamples,
		DisableAutoGenTag: true,
	}
	cmd.Flags().AddFlagSet(fs)
	return cmd
}

// parseFlags parses udpd's GNU-style flags (--admin ADDR, --admin=ADDR),
// then fills every flag not given from its UDPD_* environment variable.
// On --help it prints the usage to stdout and returns errHelp.
func parseFlags(args []string, stdout io.Writer) (*config, error) {
	cfg := &config{}
	fs, level := newFlagSet(cfg)
	if err := fs.Parse(args); err != nil {
		return nil, singleDash(fs, args, err)
	}
	if cfg.help {
		fmt.Fprint(stdout, usageText)
		fmt.Fprint(stdout, fs.FlagUsages())
		return nil, errHelp
	}
	if err := fromEnv(fs); err != nil {
		return nil, err
	}
	return cfg, cfg.check(fs, *level)
}

// newFlagSet defines udpd's flags over cfg; the log level comes back as
// text, for check.
func newFlagSet(cfg *config) (*pflag.FlagSet, *string) {
	fs := pflag.NewFlagSet("udpd", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard) // errors are returned, and printed once by Run
	fs.Usage = func() {}     // --help is a flag of ours
	fs.Var(listFlag{&cfg.listen}, "listen", "UDP `host:port` to serve, repeatable (IPv6 as [::1]:12000) (default 127.0.0.1:12000)")
	fs.StringVar(&cfg.admin, "admin", "127.0.0.1:50051", "gRPC admin API `address`: TCP host:port (plain text on loopback only, unless TLS or --admin-insecure) or unix:///path (mode 0600)")
	fs.StringVar(&cfg.adminTLSCert, "admin-tls-cert", "", "serve the admin API over TLS with this certificate `file` (PEM)")
	fs.StringVar(&cfg.adminTLSKey, "admin-tls-key", "", "the TLS certificate's private key `file` (PEM)")
	fs.StringVar(&cfg.adminClientCA, "admin-client-ca", "", "require client certificates signed by the CA in this `file` (mutual TLS)")
	fs.BoolVar(&cfg.adminInsecure, "admin-insecure", false, "allow a plain-text admin API on a non-loopback address (not recommended)")
	fs.StringVar(&cfg.adminTokenFile, "admin-token-file", "", "require \"authorization: Bearer TOKEN\" on admin calls, TOKEN read from this `file` (health and reflection stay open)")
	fs.StringVar(&cfg.statePath, "state", defaultStatePath(), "`file` the listener configuration is saved to on every change (\"\" saves nothing)")
	fs.BoolVar(&cfg.resume, "resume", false, "start the listeners saved in --state instead of --listen")
	fs.StringVar(&cfg.configFile, "config", "", "run the listeners this configuration `file` lists (YAML or JSON), and apply it again, with prune, on SIGHUP and when it changes on disk; wins over --resume")
	fs.BoolVar(&cfg.allowImperative, "allow-imperative", false, "with --config, accept admin calls that change listeners (the next reload undoes them)")
	fs.IntVar(&cfg.workers, "workers", 0, "sockets (and goroutines) per listener; 0 means one per CPU")
	fs.IntVar(&cfg.maxListeners, "max-listeners", manager.DefaultMaxListeners, "most listeners at once")
	fs.IntVar(&cfg.maxWatchers, "max-watchers", sampler.DefaultMaxWatchers, "most WatchStats streams at once (udpctl stats --watch); the next gets RESOURCE_EXHAUSTED")
	fs.DurationVar(&cfg.drainTimeout, "shutdown-timeout", 5*time.Second, "on SIGINT/SIGTERM, how long to answer queued datagrams and finish admin calls")
	fs.DurationVar(&cfg.shutdownDelay, "shutdown-delay", 0, "on SIGINT/SIGTERM, how long to go on answering after health reports NOT_SERVING, before the drain: time for health checkers and load balancers to stop sending (a second signal ends it)")
	fs.Float64Var(&cfg.rateLimit, "rate-limit", 0, "answer at most this many datagrams a second per source network (/24, /56) per listener; 0 means no limit")
	fs.IntVar(&cfg.rateBurst, "rate-burst", 0, "datagrams a source network may have answered at once (0: the --rate-limit)")
	fs.Float64Var(&cfg.rateLimitBytes, "rate-limit-bytes", 0, "answer at most this many request bytes a second per source network; 0 means no limit")
	fs.BoolVar(&cfg.limitLoopback, "rate-limit-loopback", false, "apply the rate limits to loopback sources too (exempt by default)")
	fs.Float64Var(&cfg.maxReplyRatio, "max-reply-ratio", 0, "refuse replies more than this many times longer than their request (0: off; uppercase can triple)")
	fs.StringVar(&cfg.loopPorts, "loop-ports", "", "comma-separated source `ports` of other responders, never answered (besides 7,13,17,19,37 and 12000; udpd's own addresses are never answered)")
	fs.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics at http://`HOST:PORT`/metrics and a status page at / (off unless given; loopback unless TLS or --metrics-insecure)")
	fs.BoolVar(&cfg.metricsInsecure, "metrics-insecure", false, "allow plain-text metrics on a non-loopback address")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "when serving, write the bound addresses to this `file` (for scripts and tests)")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	fs.BoolVarP(&cfg.help, "help", "h", false, "print this help and exit")
	return fs, level
}

// check validates the parsed flags and fills in what follows from them.
func (cfg *config) check(fs *pflag.FlagSet, level string) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (udpd takes flags only)", fs.Arg(0))
	}
	if err := cfg.logLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", cfg.logFormat)
	}
	cfg.listenGiven = len(cfg.listen) > 0
	if cfg.configFile != "" && cfg.listenGiven {
		return errors.New("--listen and --config both say which listeners run: list them in the file")
	}
	if cfg.allowImperative && cfg.configFile == "" {
		return errors.New("--allow-imperative needs --config")
	}
	if !cfg.listenGiven {
		cfg.listen = []string{"127.0.0.1:12000"}
	}
	for _, l := range cfg.listen {
		if _, err := manager.ParseAddress(l); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
	}
	if err := cfg.limits().Validate(); err != nil {
		return fmt.Errorf("rate limit flags: %w", err)
	}
	if cfg.loopPorts != "" {
		for _, p := range strings.Split(cfg.loopPorts, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil {
				return fmt.Errorf("--loop-ports %q: want comma-separated port numbers", cfg.loopPorts)
			}
			cfg.loopPortList = append(cfg.loopPortList, uint16(n))
		}
	}
	if cfg.workers < 0 || cfg.workers > 1024 {
		return fmt.Errorf("--workers %d: must be from 0 (one per CPU) to 1024", cfg.workers)
	}
	if cfg.maxListeners < 1 {
		return fmt.Errorf("--max-listeners %d: must be at least 1", cfg.maxListeners)
	}
	if cfg.maxWatchers < 1 {
		return fmt.Errorf("--max-watchers %d: must be at least 1", cfg.maxWatchers)
	}
	if cfg.drainTimeout <= 0 {
		return fmt.Errorf("--shutdown-timeout %v: must be positive", cfg.drainTimeout)
	}
	if cfg.shutdownDelay < 0 {
		return fmt.Errorf("--shutdown-delay %v: must not be negative", cfg.shutdownDelay)
	}
	return nil
}

// fromEnv sets every flag that the command line did not give from its
// UDPD_* variable, if that is set. UDPD_LISTEN is split at commas.
func fromEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || notFromEnv[f.Name] {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		vals := []string{v}
		if _, list := f.Value.(listFlag); list {
			vals = strings.Split(v, ",")
		}
		for _, v := range vals {
			if err := fs.Set(f.Name, strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// singleDash explains a Go-style single-dash long flag (-admin), which
// GNU-style parsing reads as the short flags -a -d -m …
func singleDash(fs *pflag.FlagSet, args []string, err error) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(a, "=")
		if len(name) > 2 && name[0] == '-' && name[1] != '-' && fs.Lookup(name[1:]) != nil {
			return fmt.Errorf("%s: udpd's long flags take two dashes (-%s)", name, name)
		}
	}
	return err
}
