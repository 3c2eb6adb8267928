package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestEveryCommandHasHelpAndExample(t *testing.T) {
	root := (&app{}).newRootCmd()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" {
			return
		}
		if c.Short == "" {
			t.Errorf("%s has no short help", c.CommandPath())
		}
		// cobra's generated completion subcommands explain themselves.
		if c.Example == "" && !strings.HasPrefix(c.CommandPath(), "udpctl completion") {
			t.Errorf("%s has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"usage", usageError{errors.New("bad flag")}, 2},
		{"wrapped usage", errors.Join(usageError{errors.New("x")}), 2},
		{"failure", failure{errors.New("no reply")}, 1},
		{"not found", status.Error(codes.NotFound, "x"), 69},
		{"unavailable", status.Error(codes.Unavailable, "x"), 78},
		{"unauthenticated", status.Error(codes.Unauthenticated, "x"), 80},
		{"unclassified", errors.New("write /dev/stdout: broken pipe"), 1},
		{"wrapped unclassified", fmt.Errorf("print: %w", errors.New("short write")), 1},
		{"fleet: the first failure's code", &fleetError{failed: []string{"b", "c"}, of: 3, first: status.Error(codes.NotFound, "x")}, 69},
		{"fleet of usage errors", &fleetError{failed: []string{"a"}, of: 2, first: usageError{errors.New("x")}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestRunUsageErrors(t *testing.T) {
	// Nothing listens on port 1: a call that got that far fails fast.
	const admin = "--admin=127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string // in the error line
	}{
		{nil, "udpctl needs a command"},
		{[]string{"--timeout", "1s"}, "udpctl needs a command"},
		{[]string{"nosuchcommand"}, `unknown command "nosuchcommand"`},
		{[]string{"stat"}, `unknown command "stat"; did you mean "stats"?`},
		{[]string{"sned"}, `unknown command "sned"; did you mean "send"?`},
		{[]string{"bogus", "--nosuchflag"}, "unknown flag"},
		{[]string{"listeners", "bogus"}, "takes no arguments"},
		{[]string{"listeners", "stop"}, "needs a listener ID"},
		{[]string{"send", "--nosuchflag"}, "unknown flag: --nosuchflag"},
		{[]string{"send", "--retries"}, "flag needs an argument"},
		{[]string{"listeners", "get"}, "needs a listener ID"},
		{[]string{"listeners", "start"}, "needs --port"},
		{[]string{"listeners", "start", "--port", "65536"}, "--port 65536"},
		{[]string{"stats", "a", "b"}, "takes at most one listener ID"},
		{[]string{"version", "x"}, "takes no arguments"},
		{[]string{"-o", "yaml", "version"}, `-o "yaml"`},
		{[]string{"-o", "yaml"}, `-o "yaml"`},
		{[]string{"listeners"}, "needs a subcommand"},
		// cobra's own commands.
		{[]string{"completion", "bash", "extra"}, `unknown command "extra"`},
		{[]string{"completion", "--nosuchflag"}, "unknown flag"},
		{[]string{"help", "bogus"}, `unknown help topic "bogus"`},
		{[]string{"__complete"}, "requires at least 1 arg"},
		{[]string{"help", "listeners", "bogus"}, `unknown help topic "listeners bogus"`},
		// A client certificate needs its key and the other way round.
		{[]string{admin, "--key", "client-key.pem", "listeners", "list"}, "--key client-key.pem needs --cert"},
		{[]string{admin, "--cacert", "ca.pem", "--cert", "client.pem", "listeners", "list"}, "--cert client.pem needs --key"},
		{[]string{admin, "--tls", "--key", "client-key.pem", "stats"}, "needs --cert"},
	} {
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code := Run(ctx, tc.args, strings.NewReader(""), &out, &errOut)
		cancel()
		if code != ExitUsage {
			t.Errorf("udpctl %q exited %d, want %d (stderr %q)", tc.args, code, ExitUsage, errOut.String())
		}
		if !strings.HasPrefix(errOut.String(), "udpctl: ") || strings.Count(errOut.String(), "\n") != 2 ||
			!strings.HasSuffix(errOut.String(), "\nRun 'udpctl --help' for usage.\n") {
			t.Errorf("udpctl %q stderr = %q, want one 'udpctl: ' error line and the usage hint", tc.args, errOut.String())
		}
		if !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("udpctl %q stderr = %q, want it to say %q", tc.args, errOut.String(), tc.want)
		}
	}
}

// Help, version and cobra's completion scripts succeed.
func TestRunHelpSucceeds(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"--help"}, "Usage:"},
		{[]string{"-h"}, "Additional Commands:"},
		{[]string{"help"}, "Administration (gRPC admin API):"},
		{[]string{"help", "listeners", "start"}, "udpctl listeners start --port PORT"},
		{[]string{"listeners", "--help"}, "udpctl listeners [command]"},
		{[]string{"listeners", "stop", "--help"}, "--drain-timeout"},
		{[]string{"send", "-h"}, "--retries"},
		{[]string{"completion"}, "bash"},
		{[]string{"completion", "bash"}, "__udpctl_"},
		{[]string{"completion", "bash", "--help"}, "bash"},
		{[]string{"--version"}, "udpctl "},
		{[]string{"version", "--client"}, "udpctl "},
	} {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
		if code != ExitOK || errOut.Len() > 0 {
			t.Errorf("udpctl %q exited %d, want 0 (stderr %q)", tc.args, code, errOut.String())
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("udpctl %q printed %q, want it to contain %q", tc.args, out.String(), tc.want)
		}
	}
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// An error that is neither a usage error nor a failed call, such as a
// failed write to stdout, exits 1 without the usage hint.
func TestRunWriteErrorIsFailure(t *testing.T) {
	addr := echoServer(t)
	var errOut bytes.Buffer
	code := Run(context.Background(), []string{"send", "--server", addr, "hi"}, nil, brokenWriter{}, &errOut)
	if code != ExitFailure {
		t.Errorf("send to a broken stdout exited %d, want %d (stderr %q)", code, ExitFailure, errOut.String())
	}
	if errOut.String() != "udpctl: broken pipe\n" {
		t.Errorf("stderr = %q, want only the error line", errOut.String())
	}
}

func TestStatsHelpNamesItsColumns(t *testing.T) {
	long := (&app{}).newStatsCmd().Long
	words := strings.Fields(long)
	has := func(w string) bool {
		for _, x := range words {
			if strings.Trim(x, "(),.;:'") == w {
				return true
			}
		}
		return false
	}
	for _, col := range statsTable(nil, nil, true).header[1:] {
		if !has(col) {
			t.Errorf("stats help does not explain column %s", col)
		}
	}
	// DROPPED is every datagram received and not answered: see dropped.
	if !strings.Contains(strings.Join(words, " "), "DROPPED (and DROPS/S) is TOO_LARGE + SEND_ERRORS + LOOP_BLOCKED + RATE_LIMITED") {
		t.Errorf("stats help does not define DROPPED as dropped() computes it:\n%s", long)
	}
}

func TestHostFlagHelp(t *testing.T) {
	usage := (&app{}).newStartCmd().Flags().Lookup("host").Usage
	if !strings.Contains(usage, "0.0.0.0 for every IPv4 address, :: for every IPv6 address") {
		t.Errorf("--host help = %q, want it to say :: is every IPv6 address (udpd binds [::] IPv6-only)", usage)
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__udpctl_", "zsh": "#compdef udpctl", "fish": "complete -c udpctl"} {
		var out, errOut bytes.Buffer
		if code := Run(context.Background(), []string{"completion", shell}, nil, &out, &errOut); code != 0 {
			t.Fatalf("completion %s exited %d: %s", shell, code, errOut.String())
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("completion %s output lacks %q", shell, want)
		}
	}
	// -o completes to its two formats.
	var out bytes.Buffer
	Run(context.Background(), []string{"__complete", "stats", "-o", ""}, nil, &out, &bytes.Buffer{})
	if !strings.Contains(out.String(), "text\nwide\njson\n") {
		t.Errorf("completion of -o = %q, want text, wide and json", out.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, nil, &out, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(out.String(), "udpctl ") {
		t.Errorf("version: exit %d, output %q", code, out.String())
	}
}
