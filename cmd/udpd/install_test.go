package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstall runs make install into a temporary DESTDIR, with
// -buildvcs=false so that only the Makefile's stamping can name the
// revision, and checks that everything the README lists is there and
// works: both binaries (stamped), the man pages the unit and the README
// refer to, the shell completions and the unit pointing at the binary.
func TestMakeInstall(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("make not found")
		}
		t.Skip("make not found")
	}
	dest, bin := t.TempDir(), t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+bin)
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	files := map[string]os.FileMode{
		"usr/bin/udpd":                                    0o755,
		"usr/bin/udpctl":                                  0o755,
		"usr/share/man/man8/udpd.8":                       0o644,
		"usr/share/man/man1/udpctl.1":                     0o644,
		"usr/share/man/man1/udpctl-listeners-stop.1":      0o644,
		"usr/share/man/man1/udpctl-version.1":             0o644,
		"usr/share/bash-completion/completions/udpctl":    0o644,
		"usr/share/zsh/site-functions/_udpctl":            0o644,
		"usr/share/fish/vendor_completions.d/udpctl.fish": 0o644,
		"usr/lib/systemd/system/udpd.service":             0o644,
		"usr/lib/systemd/system/udpd.socket":              0o644,
	}
	for name, mode := range files {
		fi, err := os.Stat(filepath.Join(dest, name))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Size() == 0 || fi.Mode().Perm() != mode {
			t.Errorf("%s: size %d mode %v, want non-empty with %v", name, fi.Size(), fi.Mode().Perm(), mode)
		}
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dest, name))
		return string(b)
	}
	if man := read("usr/share/man/man8/udpd.8"); !strings.Contains(man, `.TH "UDPD" "8"`) || !strings.Contains(man, "admin") || !strings.Contains(man, "UDPD_") {
		t.Errorf("udpd.8 is not udpd's man page with its flags and environment:\n%.400s", man)
	}
	if c := read("usr/share/bash-completion/completions/udpctl"); !strings.Contains(c, "__start_udpctl") {
		t.Errorf("bash completion is not udpctl's:\n%.200s", c)
	}
	unit := read("usr/lib/systemd/system/udpd.service")
	if !strings.Contains(unit, "\nExecStart=/usr/bin/udpd ") || !strings.Contains(unit, "\nExecReload=/usr/bin/udpctl ") ||
		!strings.Contains(unit, "Documentation=man:udpd(8)") {
		t.Errorf("the unit does not run /usr/bin/udpd or lost its man page:\n%s", unit)
	}

	// The stamp comes from git, through the Makefile's -ldflags.
	want := "revision unknown"
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		want = "revision " + strings.TrimSpace(string(out))[:12]
	}
	for _, c := range [][]string{{"usr/bin/udpd", "--version"}, {"usr/bin/udpctl", "version", "--client"}} {
		out, err := exec.Command(filepath.Join(dest, c[0]), c[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: %q (%v), want it to say %q", strings.Join(c, " "), out, err, want)
		}
	}
}
