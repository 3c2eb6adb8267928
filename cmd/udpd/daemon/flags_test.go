package daemon

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestFlagsGNUStyle(t *testing.T) {
	cfg, err := parseFlags([]string{"--admin=127.0.0.1:0", "--listen", "127.0.0.1:0", "--listen=[::1]:0", "--resume", "--workers", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.admin != "127.0.0.1:0" || !cfg.resume || cfg.workers != 3 || strings.Join(cfg.listen, " ") != "127.0.0.1:0 [::1]:0" {
		t.Errorf("got admin %q resume %v workers %d listen %q", cfg.admin, cfg.resume, cfg.workers, cfg.listen)
	}
}

func TestFlagsSingleDashExplained(t *testing.T) {
	_, err := parseFlags([]string{"-admin", "127.0.0.1:0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "two dashes (--admin)") {
		t.Errorf("-admin: got %v, want a hint at --admin", err)
	}
}

func TestFlagsHelpGoesToStdout(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out bytes.Buffer
		if _, err := parseFlags([]string{arg}, &out); err != errHelp {
			t.Fatalf("%s: got %v, want errHelp", arg, err)
		}
		if n := strings.Count(out.String(), "Usage: udpd"); n != 1 {
			t.Errorf("%s: usage printed %d times, want once:\n%s", arg, n, out.String())
		}
		if !strings.Contains(out.String(), "--shutdown-timeout duration") || !strings.Contains(out.String(), "UDPD_") {
			t.Errorf("%s: usage lacks the GNU-style flags or the environment:\n%s", arg, out.String())
		}
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("UDPD_ADMIN", "unix:///tmp/udpd-env.sock")
	t.Setenv("UDPD_LISTEN", "127.0.0.1:1,[::1]:2")
	t.Setenv("UDPD_RESUME", "true")
	t.Setenv("UDPD_SHUTDOWN_TIMEOUT", "7s")
	t.Setenv("UDPD_RATE_LIMIT", "10")
	t.Setenv("UDPD_WORKERS", "2")
	t.Setenv("UDPD_VERSION", "1.2.3") // an action, not a setting: ignored
	cfg, err := parseFlags([]string{"--workers", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.admin != "unix:///tmp/udpd-env.sock" {
		t.Errorf("admin: got %q, want UDPD_ADMIN's", cfg.admin)
	}
	if got := strings.Join(cfg.listen, " "); got != "127.0.0.1:1 [::1]:2" || !cfg.listenGiven {
		t.Errorf("listen: got %q (given %v), want UDPD_LISTEN's two", got, cfg.listenGiven)
	}
	if !cfg.resume || cfg.drainTimeout != 7*time.Second || cfg.rateLimit != 10 {
		t.Errorf("got resume %v shutdown-timeout %v rate-limit %v, want UDPD_*'s", cfg.resume, cfg.drainTimeout, cfg.rateLimit)
	}
	if cfg.workers != 4 {
		t.Errorf("workers: got %d, want the flag's 4 over UDPD_WORKERS=2", cfg.workers)
	}
	if cfg.version {
		t.Error("UDPD_VERSION turned on --version")
	}
}

func TestFlagsFromEnvironmentAreChecked(t *testing.T) {
	t.Setenv("UDPD_WORKERS", "many")
	_, err := parseFlags(nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "UDPD_WORKERS") {
		t.Errorf("got %v, want an error naming UDPD_WORKERS", err)
	}
	t.Setenv("UDPD_WORKERS", "5000")
	if _, err := parseFlags(nil, io.Discard); err == nil {
		t.Error("UDPD_WORKERS=5000 accepted, want the --workers range check")
	}
}

func TestUsageErrorPrintedOnce(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Run(t.Context(), []string{"--bogus"}, &stdout, &stderr); code != exitUsage {
		t.Errorf("exit code %d, want %d", code, exitUsage)
	}
	want := "udpd: unknown flag: --bogus\nRun 'udpd --help' for usage.\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stderr %q stdout %q, want stderr %q", stderr.String(), stdout.String(), want)
	}
}
