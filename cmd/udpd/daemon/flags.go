package daemon

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/udpd/udpd/service/manager"
)

// config is what the command line says.
type config struct {
	listen       []string
	admin        string
	statePath    string
	resume       bool
	workers      int
	maxListeners int
	drainTimeout time.Duration
	logLevel     slog.Level
	logFormat    string
	readyFile    string
	version      bool
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

const usageText = `Usage: udpd [flags]

udpd answers every UDP datagram with its uppercase, on any number of
listeners managed at run time over a gRPC admin API (see udpctl).

With no flags it serves 127.0.0.1:12000 and the admin API on
127.0.0.1:50051. With --resume it starts the listeners saved in the state
file instead (the --listen ones on the first run, when there is none).

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("udpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	fs.Var(listFlag{&cfg.listen}, "listen", "UDP `host:port` to serve, repeatable (IPv6 as [::1]:12000) (default 127.0.0.1:12000)")
	fs.StringVar(&cfg.admin, "admin", "127.0.0.1:50051", "gRPC admin API `address` (TCP host:port)")
	fs.StringVar(&cfg.statePath, "state", defaultStatePath(), "`file` the listener configuration is saved to on every change (\"\" saves nothing)")
	fs.BoolVar(&cfg.resume, "resume", false, "start the listeners saved in --state instead of --listen")
	fs.IntVar(&cfg.workers, "workers", 0, "sockets (and goroutines) per listener; 0 means one per CPU")
	fs.IntVar(&cfg.maxListeners, "max-listeners", manager.DefaultMaxListeners, "most listeners at once")
	fs.DurationVar(&cfg.drainTimeout, "shutdown-timeout", 5*time.Second, "on SIGINT/SIGTERM, how long to answer queued datagrams and finish admin calls")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log `format`: text or json")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "when serving, write the bound addresses to this `file` (for scripts and tests)")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags only; see udpd -h)", fs.Arg(0))
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	if cfg.logFormat != "text" && cfg.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", cfg.logFormat)
	}
	if len(cfg.listen) == 0 {
		cfg.listen = []string{"127.0.0.1:12000"}
	}
	for _, l := range cfg.listen {
		if _, err := manager.ParseAddress(l); err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
	}
	if cfg.workers < 0 {
		return nil, fmt.Errorf("--workers %d: must be 0 or more", cfg.workers)
	}
	return cfg, nil
}
