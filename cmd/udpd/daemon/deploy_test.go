package daemon

import (
	"bufio"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/udpd/udpd/service/manager"
)

// TestSystemdUnit keeps deploy/udpd.service honest: its ExecStart must
// parse with udpd's own flags, and the hardening it promises must be there.
func TestSystemdUnit(t *testing.T) {
	settings := unitSettings(t, "../../../deploy/udpd.service")
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
	reload := strings.Fields(settings["ExecReload"][0])
	if len(reload) < 4 || reload[0] != "/usr/local/bin/udpctl" || strings.Join(reload[len(reload)-2:], " ") != "daemon upgrade" ||
		!strings.Contains(settings["ExecReload"][0], "--admin "+cfg.admin) {
		t.Errorf("ExecReload = %q, want udpctl --admin %s daemon upgrade", settings["ExecReload"], cfg.admin)
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

// TestSocketUnit keeps deploy/udpd.socket honest: every ListenDatagram= is
// an address udpd accepts, and FileDescriptorName= is a listener id.
func TestSocketUnit(t *testing.T) {
	settings := unitSettings(t, "../../../deploy/udpd.socket")
	listen := settings["ListenDatagram"]
	if len(listen) == 0 {
		t.Fatal("no ListenDatagram= line")
	}
	for _, l := range listen {
		if _, err := manager.ParseAddress(l); err != nil {
			t.Errorf("ListenDatagram=%s: %v", l, err)
		}
	}
	names := settings["FileDescriptorName"]
	if len(names) != 1 {
		t.Fatalf("FileDescriptorName = %q, want one", names)
	}
	if err := manager.ValidateID(names[0]); err != nil {
		t.Errorf("FileDescriptorName=%s is not a listener id: %v", names[0], err)
	}
	for _, k := range []string{"Accept", "ListenStream"} {
		if v, ok := settings[k]; ok {
			t.Errorf("%s = %q: udpd takes datagram sockets only, without Accept", k, v)
		}
	}
}

// unitSettings reads a systemd unit file into key → values.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
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
			t.Fatalf("%s: line %q is not key=value", path, line)
		}
		settings[k] = append(settings[k], v)
	}
	return settings
}
