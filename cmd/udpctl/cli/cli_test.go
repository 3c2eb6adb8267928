package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

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
		{"cobra's own", errors.New(`unknown command "x" for "udpctl"`), 2},
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
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"send", "--nosuchflag"},
		{"listeners", "get"},
		{"listeners", "start"},
		{"listeners", "start", "--port", "65536"},
		{"stats", "a", "b"},
		{"-o", "yaml", "version"},
		{"listeners"},
	} {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != ExitUsage {
			t.Errorf("udpctl %q exited %d, want %d (stderr %q)", args, code, ExitUsage, errOut.String())
		}
		if !strings.HasPrefix(errOut.String(), "udpctl: ") || strings.Count(errOut.String(), "\n") != 2 {
			t.Errorf("udpctl %q stderr = %q, want one 'udpctl: ' error line and the usage hint", args, errOut.String())
		}
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
	if !strings.Contains(out.String(), "text\njson\n") {
		t.Errorf("completion of -o = %q, want text and json", out.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, nil, &out, &bytes.Buffer{}); code != 0 || !strings.HasPrefix(out.String(), "udpctl ") {
		t.Errorf("version: exit %d, output %q", code, out.String())
	}
}
