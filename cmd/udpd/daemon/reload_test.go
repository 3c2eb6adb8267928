package daemon

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/udpd/udpd/service/manager"
)

// configMap is a directory laid out as Kubernetes mounts a ConfigMap:
// DIR/udpd.yaml → ..data/udpd.yaml, ..data → ..vN, and an update swaps
// ..data to a new directory by renaming a new link over it.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func newConfigMap(t *testing.T, content string) *configMap {
	c := &configMap{t: t, dir: t.TempDir()}
	c.swap(content)
	if err := os.Symlink(filepath.Join("..data", "udpd.yaml"), c.path()); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *configMap) path() string { return filepath.Join(c.dir, "udpd.yaml") }

// swap publishes content the way the kubelet does: a new directory, a new
// link, renamed over ..data in one step.
func (c *configMap) swap(content string) {
	c.t.Helper()
	c.n++
	v := "..v" + string(rune('0'+c.n))
	if err := os.Mkdir(filepath.Join(c.dir, v), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, v, "udpd.yaml"), []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(v, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
}

type reloadResult struct {
	plan manager.Plan
	err  error
}

// startWithConfig starts a daemon from path and its reloader, whose
// results come on the channel returned; hup is its SIGHUP.
func startWithConfig(t *testing.T, path string) (*daemon, chan os.Signal, chan reloadResult) {
	t.Helper()
	cfg, err := parseFlags([]string{"--admin", "127.0.0.1:0", "--state", filepath.Join(t.TempDir(), "state.json"), "--config", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	d, err := start(t.Context(), cfg, quiet())
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { d.shutdown(context.Background()) })
	r := d.reloader()
	results := make(chan reloadResult, 16)
	r.after = func(p manager.Plan, err error) { results <- reloadResult{p, err} }
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.run(ctx, hup); err != nil {
			t.Errorf("reloader: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	// A SIGHUP answered means the watches are in place.
	hup <- os.Interrupt
	if res := wait(t, results); res.err != nil || len(res.plan.Changes) != 0 {
		t.Fatalf("first SIGHUP: %+v, want no changes", res)
	}
	return d, hup, results
}

func wait(t *testing.T, results chan reloadResult) reloadResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-t.Context().Done():
		t.Fatal("no reload")
	}
	return reloadResult{}
}

// waitApplied waits for a reload that applied: a write in place may be
// read half way (an empty file, rejected) before its last event.
func waitApplied(t *testing.T, results chan reloadResult) reloadResult {
	t.Helper()
	for {
		if r := wait(t, results); r.err == nil {
			return r
		}
	}
}

func listenerIDs(d *daemon) []string {
	ls, _ := d.m.List("", 0)
	var ids []string
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	return ids
}

// TestConfigMapSwapReloads: udpd --config on a ConfigMap-style mount
// applies each swap (prune included), keeps what did not change serving
// with its counters, and keeps the running configuration when a swap
// brings an invalid file.
func TestConfigMapSwapReloads(t *testing.T) {
	cm := newConfigMap(t, "listeners:\n  - {id: a, address: 127.0.0.1:0}\n")
	d, hup, results := startWithConfig(t, cm.path())
	if got := listenerIDs(d); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("started %v, want [a]", got)
	}
	a, _ := d.m.Get("a")
	if got := echo(t, a.BoundAddress.String(), "hi"); got != "HI" {
		t.Fatalf("a answered %q", got)
	}

	// A swap that changes a's limits and adds b.
	cm.swap("listeners:\n  - {id: a, address: 127.0.0.1:0, limits: {max_reply_ratio: 2}}\n  - {id: b, address: 127.0.0.1:0}\n")
	res := wait(t, results)
	if res.err != nil || len(res.plan.Changes) != 2 {
		t.Fatalf("reload after the swap: %+v, want 2 changes", res)
	}
	a2, _ := d.m.Get("a")
	if a2.BoundAddress != a.BoundAddress || a2.Limits.MaxReplyRatio != 2 || a2.Stats.DatagramsReceived != 1 {
		t.Errorf("a after the swap: %v ratio %v received %d, want %v, 2, 1", a2.BoundAddress, a2.Limits.MaxReplyRatio, a2.Stats.DatagramsReceived, a.BoundAddress)
	}
	if got := listenerIDs(d); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after the swap: %v, want [a b]", got)
	}

	// An invalid file is rejected; everything keeps serving.
	cm.swap("listeners:\n  - {id: a, adress: 127.0.0.1:0}\n")
	if res := wait(t, results); res.err == nil {
		t.Fatalf("reload of an invalid file: %+v, want an error", res)
	}
	if got := listenerIDs(d); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after the invalid file: %v, want [a b]", got)
	}
	if got := echo(t, a.BoundAddress.String(), "still"); got != "STILL" {
		t.Errorf("a answered %q after the invalid file", got)
	}
	// SIGHUP reads it again: still rejected.
	hup <- os.Interrupt
	if res := wait(t, results); res.err == nil {
		t.Fatalf("SIGHUP on an invalid file: %+v, want an error", res)
	}

	// A valid file again, without a: prune stops it.
	cm.swap("listeners:\n  - {id: b, address: 127.0.0.1:0}\n")
	if res := wait(t, results); res.err != nil {
		t.Fatalf("reload: %v", res.err)
	}
	if got := listenerIDs(d); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after pruning a: %v, want [b]", got)
	}
	if specs, _ := d.m.Config(); len(specs) != 1 || specs[0].ID != "b" {
		t.Errorf("configuration %+v, want b only", specs)
	}
}

// TestConfigFileRewrittenInPlace: an editor that writes the file in place
// or renames a new one over it triggers a reload too.
func TestConfigFileRewrittenInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "udpd.yaml")
	if err := os.WriteFile(path, []byte("listeners: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _, results := startWithConfig(t, path)
	if err := os.WriteFile(path, []byte("listeners: [{id: w, address: 127.0.0.1:0}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := waitApplied(t, results); res.err != nil || !slices.Equal(listenerIDs(d), []string{"w"}) {
		t.Fatalf("after writing in place: %+v, listeners %v, want [w]", res, listenerIDs(d))
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte("listeners: [{id: r, address: 127.0.0.1:0}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if res := wait(t, results); res.err != nil || !slices.Equal(listenerIDs(d), []string{"r"}) {
		t.Fatalf("after a rename over the file: %+v, listeners %v, want [r]", res, listenerIDs(d))
	}
}

func TestConfigFlagPrecedence(t *testing.T) {
	for _, args := range [][]string{
		{"--config", "x.yaml", "--listen", "127.0.0.1:0"},
		{"--allow-imperative"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want a usage error", args)
		}
	}
	// An invalid file stops udpd at start-up.
	path := filepath.Join(t.TempDir(), "udpd.yaml")
	os.WriteFile(path, []byte("listeners:\n  - {id: a}\n"), 0o644)
	cfg, err := parseFlags([]string{"--admin", "127.0.0.1:0", "--state", "", "--config", path, "--resume"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := start(t.Context(), cfg, quiet()); err == nil {
		t.Fatal("start with an invalid configuration file succeeded")
	}
}
