// Package cli is the udpctl program: a cobra command tree whose commands
// send datagrams (send) or call the udpd admin API (listeners, stats).
// It is a client and speaks only the wire: UDP and the gRPC API in gen/.
// main only calls Main; tests call Run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/udpd/udpd/cmd/internal/buildinfo"
)

// Exit codes. A failed admin call exits with 64 plus its gRPC code, like
// grpcurl, so scripts can handle both tools with one case statement.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command could not do its job (e.g. no UDP reply)
	ExitUsage   = 2 // bad flags or arguments
	ExitRPCBase = 64
)

// defaultAdmin is the admin address udpctl calls when told none.
const defaultAdmin = "127.0.0.1:50051"

// Main runs udpctl with the process's arguments and exits.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs udpctl with args and returns its exit code. Errors are printed
// to stderr as one line starting "udpctl: ".
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := app.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, errChanged) {
		return ExitChanged // apply and diff: the plan printed says what
	}
	if cmd != nil && cmd.Name() == cobra.ShellCompRequestCmd {
		// cobra adds its hidden __complete command in Execute, too late
		// for usageArgs; it fails only on its own argument check.
		err = usageError{err}
	}
	fmt.Fprintf(stderr, "udpctl: %s\n", errorLine(err))
	code := exitCode(err)
	if code == ExitUsage {
		fmt.Fprintf(stderr, "Run 'udpctl --help' for usage.\n")
	}
	return code
}

// Command returns udpctl's command tree, for generating its man pages
// (cmd/internal/mangen). Running it writes to the process's streams.
func Command() *cobra.Command {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	root := a.newRootCmd()
	root.DisableAutoGenTag = true
	return root
}

// app holds the standard streams and the global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	admin          string
	context        string
	output         string
	noHeaders      bool
	timeout        time.Duration
	tokenFile      string
	tls            bool
	caCert         string
	cert, key      string
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "udpctl",
		Short: "Talk to udpd: send datagrams, manage listeners, read statistics",
		Long: `udpctl sends datagrams to a udpd listener and manages udpd over its gRPC
admin API (udpd.admin.v1.ListenerService).

Output is a table for people, or with -o json the protojson of each
response message, exactly as grpcurl prints it (64-bit counters are JSON
strings), one document per call or per streamed message.

Several daemons: --admin takes a comma-separated list, and --context names
contexts (admin address, TLS, token file) in $XDG_CONFIG_HOME/udpctl/config.yaml.
Admin commands then run on every daemon in parallel; tables gain a DAEMON
column, JSON documents a "daemon" field, and the exit code is that of the
first daemon that failed.

Exit codes: 0 success; 1 failure (such as no UDP reply); 2 usage error;
64+N a failed admin call with gRPC code N (like grpcurl): 69 NOT_FOUND,
73 FAILED_PRECONDITION, 67 INVALID_ARGUMENT, 78 UNAVAILABLE, …`,
		Example: `  udpctl send "hello"
  udpctl listeners start --port 12001
  udpctl listeners list -o json | jq -r '.listeners[].id'
  udpctl --context edge-a,edge-b stats`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		Version:           buildinfo.Get().String(),
		PersistentPreRunE: a.checkGlobals,
		// Suggest "send" for "sned", as cobra does by default.
		SuggestionsMinimumDistance: 2,
		// An Args check and a RunE of its own keep cobra from its legacy
		// "unknown command" path, whose error would not be a usageError.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return usageError{errors.New(msg)}
		},
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("udpctl needs a command; see udpctl --help")}
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate("udpctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.admin, "admin", defaultAdmin, "udpd admin API `addresses`, comma-separated (env UDPCTL_ADMIN)")
	pf.StringVar(&a.context, "context", "", "call the daemons of these `names`, comma-separated, from the contexts file (env UDPCTL_CONTEXT)")
	pf.StringVarP(&a.output, "output", "o", "text", "output `format`: text, wide (tables with more columns) or json")
	pf.BoolVar(&a.noHeaders, "no-headers", false, "print tables without their header row")
	pf.DurationVar(&a.timeout, "timeout", 0, "how long each admin call may take (default 10s; send and bench wait --reply-timeout)")
	pf.StringVar(&a.tokenFile, "token-file", "", "send the bearer token in this `file` with admin calls (env UDPCTL_TOKEN holds the token itself)")
	pf.BoolVar(&a.tls, "tls", false, "connect to the admin API over TLS (implied by --cacert, --cert)")
	pf.StringVar(&a.caCert, "cacert", "", "trust the admin server's certificate if signed by the CA in this `file`")
	pf.StringVar(&a.cert, "cert", "", "client certificate `file` for mutual TLS")
	pf.StringVar(&a.key, "key", "", "client certificate's key `file`")
	root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		path, err := contextsPath()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		f, err := loadContexts(path)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, c := range f.Contexts {
			names = append(names, c.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"text", "wide", "json"}, cobra.ShellCompDirectiveNoFileComp
	})

	root.AddGroup(
		&cobra.Group{ID: "data", Title: "Datagrams:"},
		&cobra.Group{ID: "admin", Title: "Administration (gRPC admin API):"},
	)
	for _, c := range []*cobra.Command{a.newSendCmd(), a.newBenchCmd()} {
		c.GroupID = "data"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.newListenersCmd(), a.newStatsCmd(), a.newHealthCmd(), a.newConfigCmd(), a.newApplyCmd(), a.newDiffCmd(), a.newDaemonCmd()} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	root.AddCommand(a.newVersionCmd())

	// cobra's own help and completion commands, added now rather than in
	// Execute so that their argument checks can be made usage errors too.
	// The completion commands keep the output set above.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			run := c.Run
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if _, rest, err := cmd.Root().Find(args); err != nil || len(rest) > 0 {
					return usageError{fmt.Errorf("unknown help topic %q", strings.Join(args, " "))}
				}
				run(cmd, args)
				return nil
			}
		}
	}
	usageArgs(root)
	return root
}

// usageArgs makes a failed argument check of c or of any command below it
// a usageError (exit 2).
func usageArgs(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var u usageError
			if err != nil && !errors.As(err, &u) {
				return usageError{err}
			}
			return err
		}
	}
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
}

func (a *app) checkGlobals(cmd *cobra.Command, _ []string) error {
	if a.output == "yaml" && cmd.CommandPath() == "udpctl config get" {
		return nil // the configuration file's format, which text prints too
	}
	if a.output != "text" && a.output != "wide" && a.output != "json" {
		return usageError{fmt.Errorf("-o %q: want text, wide or json", a.output)}
	}
	if a.timeout < 0 {
		return usageError{fmt.Errorf("--timeout %v: must not be negative", a.timeout)}
	}
	return nil
}

func (a *app) json() bool { return a.output == "json" }

// wide is -o wide: text tables with every column.
func (a *app) wide() bool { return a.output == "wide" }

// rpcTimeout is the deadline of one admin call.
func (a *app) rpcTimeout() time.Duration {
	if a.timeout > 0 {
		return a.timeout
	}
	return 10 * time.Second
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// usageError marks a bad command line (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// failure marks a command that ran and failed (exit 1).
type failure struct{ err error }

func (e failure) Error() string { return e.err.Error() }
func (e failure) Unwrap() error { return e.err }

// exitCode is the one place an error becomes an exit code.
func exitCode(err error) int {
	var u usageError
	var f failure
	switch {
	case err == nil:
		return ExitOK
	}
	if fe, ok := isFleetError(err); ok {
		return exitCode(fe.first)
	}
	switch {
	case errors.As(err, &u):
		return ExitUsage
	case errors.As(err, &f):
		return ExitFailure
	}
	if st, ok := status.FromError(err); ok {
		return ExitRPCBase + int(st.Code())
	}
	// Anything else, such as a failed write to stdout, is a failure. The
	// errors cobra makes itself are usageErrors: see SetFlagErrorFunc, the
	// root command's Args and RunE, and usageArgs.
	return ExitFailure
}

// errorLine is the message printed for err: for a failed call, the gRPC
// code and message, and the reason and field from the error details.
func errorLine(err error) string {
	if fe, ok := isFleetError(err); ok {
		return fe.Error()
	}
	var several idErrors
	if errors.As(err, &several) {
		return several.Error()
	}
	var one idError
	if errors.As(err, &one) {
		return one.Error()
	}
	if st, ok := status.FromError(err); ok {
		return rpcErrorLine(st)
	}
	return err.Error()
}

// noArgs and exactArgs are cobra.Args that make a wrong count a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
	}
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s needs %s", cmd.CommandPath(), what)}
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%s needs %s", cmd.CommandPath(), what)}
		}
		return nil
	}
}

func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageError{fmt.Errorf("%s takes at most %s", cmd.CommandPath(), what)}
		}
		return nil
	}
}
