package daemon

import (
	"bufio"
	"io"
	"os"
	"strings"
	"testing"
)

// TestSystemdUnit keeps deploy/udpd.service honest: its ExecStart must
// parse with udpd's own flags, and the hardening it promises must be there.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("../../../deploy/udpd.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q is not key=value", line)
		}
		settings[k] = append(settings[k], v)
	}
	exec := strings.Fields(settings["ExecStart"][0])
	if exec[0] != "/usr/local/bin/udpd" {
		t.Errorf("ExecStart runs %q, want /usr/local/bin/udpd", exec[0])
	}
	t.Setenv("STATE_DIRECTORY", "/var/lib/udpd")
	cfg, err := parseFlags(exec[1:], io.Discard)
	if err != nil {
		t.Fatalf("ExecStart flags do not parse: %v", err)
	}
	if !cfg.resume || cfg.statePath != "/var/lib/udpd/state.json" || !strings.HasPrefix(cfg.admin, "unix:///run/udpd/") {
		t.Errorf("ExecStart: resume %v, state %q, admin %q; want --resume, the StateDirectory and a socket in the RuntimeDirectory",
			cfg.resume, cfg.statePath, cfg.admin)
	}
	for k, want := range map[string]string{
		"Type": "notify", "Restart": "on-failure", "DynamicUser": "yes", "StateDirectory": "udpd",
		"RuntimeDirectory": "udpd", "CapabilityBoundingSet": "", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
	} {
		if got := settings[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
