package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	configfile "github.com/udpd/udpd/service/config"
	"github.com/udpd/udpd/service/manager"
)

// reloadSettle is how long the configuration file's directory must be
// quiet after a change before the file is read: an editor's save or a
// ConfigMap's swap is several events in a row.
const reloadSettle = 100 * time.Millisecond

// readConfigFile reads and parses the configuration file, returning it
// as specs and the digest of its bytes.
func readConfigFile(path string) ([]manager.Spec, [32]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, [32]byte{}, fmt.Errorf("read configuration: %w", err)
	}
	sum := sha256.Sum256(data)
	f, err := configfile.Parse(data)
	if err != nil {
		return nil, sum, fmt.Errorf("configuration %s: %w", path, err)
	}
	return specsOf(f), sum, nil
}

// specsOf is the manager's view of a configuration file.
func specsOf(f configfile.File) []manager.Spec {
	specs := make([]manager.Spec, len(f.Listeners))
	for i, l := range f.Listeners {
		specs[i] = manager.Spec{ID: l.ID, Address: l.Address, Workers: l.Workers}
		if m := l.Limits; m != nil {
			specs[i].Limits = &manager.Limits{
				PerSecond: m.PerSecond, Burst: m.Burst, BytesPerSecond: m.BytesPerSecond,
				BytesBurst: m.BytesBurst, LimitLoopback: m.LimitLoopback, MaxReplyRatio: m.MaxReplyRatio,
			}
		}
	}
	return specs
}

// reloader applies the configuration file again, with prune, on SIGHUP
// and when the file changes on disk. It watches the file's directory, so
// it sees a file replaced by rename (editors) and a Kubernetes ConfigMap
// mount, whose files are symbolic links through a "..data" link that is
// swapped atomically; and the directory of the file the path resolves
// to, for a path that is a link elsewhere. A file that cannot be read or
// parsed, or applied, is logged and the running configuration keeps
// serving.
type reloader struct {
	path  string
	m     *manager.Manager
	log   *slog.Logger
	drain time.Duration
	last  [32]byte // digest of the content last read, applied or rejected
	// after, when set, is called after every reload that read new
	// content (and after every SIGHUP), with what Apply returned.
	after func(manager.Plan, error)
}

// run reloads until ctx is done. hup delivers SIGHUP.
func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch configuration: %w", err)
	}
	defer w.Close()
	watched := map[string]bool{}
	watch := func() {
		dirs := []string{filepath.Dir(r.path)}
		if real, err := filepath.EvalSymlinks(r.path); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		for _, d := range dirs {
			if !watched[d] {
				if err := w.Add(d); err != nil {
					r.log.Warn("cannot watch the configuration's directory; reload with SIGHUP", "dir", d, "err", err)
					continue
				}
				watched[d] = true
			}
		}
	}
	watch()
	// A change between udpd's start and the watch is caught here.
	r.reload(ctx, "file changed", false)
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			r.reload(ctx, "SIGHUP", true)
			watch()
		case _, ok := <-w.Events:
			if !ok {
				return nil
			}
			// Any change in the directory: the digest tells whether the
			// file's content is new.
			settle.Reset(reloadSettle)
		case <-settle.C:
			r.reload(ctx, "file changed", false)
			watch()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn("watching the configuration", "err", err)
		}
	}
}

// reload reads the file and applies it with prune, unless (force unset)
// its content is what was read last time.
func (r *reloader) reload(ctx context.Context, why string, force bool) {
	specs, sum, err := readConfigFile(r.path)
	if !force && sum == r.last && err == nil {
		return
	}
	r.last = sum
	if err != nil {
		r.log.Error("configuration reload rejected; the running configuration keeps serving", "why", why, "err", err)
		r.done(manager.Plan{}, err)
		return
	}
	plan, err := r.m.Apply(ctx, specs, manager.ApplyOptions{Prune: true, Drain: r.drain})
	if err != nil {
		r.log.Error("configuration reload failed; the running configuration keeps serving", "why", why, "err", err)
		r.done(plan, err)
		return
	}
	var changes []string
	for _, c := range plan.Changes {
		changes = append(changes, c.Action.Symbol()+c.ID)
	}
	r.log.Info("configuration reloaded", "why", why, "file", r.path, "changes", strings.Join(changes, " "), "version", plan.Version)
	r.done(plan, nil)
}

func (r *reloader) done(p manager.Plan, err error) {
	if r.after != nil {
		r.after(p, err)
	}
}
