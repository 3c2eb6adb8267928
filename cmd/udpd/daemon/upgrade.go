package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/handoff"
	"github.com/udpd/udpd/service/manager"
)

// inventory is what the old udpd tells the new one about the files it
// passes: files "admin", "metrics" (with --metrics), "lock" (with
// --state) and "listener/ID/N" for socket N of listener ID.
type inventory struct {
	OldPid    int              `json:"old_pid"`
	Listeners []handedListener `json:"listeners"`
}

type handedListener struct {
	Spec       manager.Spec `json:"spec"`
	Generation uint64       `json:"generation"`
	Created    time.Time    `json:"created"`
	Bound      time.Time    `json:"bound"`
	Sockets    int          `json:"sockets"`
}

func socketName(id string, i int) string { return "listener/" + id + "/" + strconv.Itoa(i) }

// inherited is what a udpd started by an upgrade took from the old one.
type inherited struct {
	parent  *handoff.Parent
	inv     inventory
	adopted []manager.Adopted
	files   []*os.File // the listeners' sockets, closed once adopted
}

// inherit takes the hand-over that started this udpd, or returns nil if
// none did.
func inherit() (*inherited, error) {
	in := &inherited{}
	p, err := handoff.Inherit(&in.inv)
	if p == nil || err != nil {
		return nil, err
	}
	in.parent = p
	for _, hl := range in.inv.Listeners {
		a := manager.Adopted{Spec: hl.Spec, Generation: hl.Generation, Created: hl.Created, Bound: hl.Bound}
		for i := range hl.Sockets {
			f := p.File(socketName(hl.Spec.ID, i))
			if f == nil {
				in.fail(fmt.Errorf("no socket %d of listener %q", i, hl.Spec.ID))
				return nil, fmt.Errorf("hand-over: no socket %d of listener %q", i, hl.Spec.ID)
			}
			a.Files = append(a.Files, f)
			in.files = append(in.files, f)
		}
		in.adopted = append(in.adopted, a)
	}
	return in, nil
}

// fail tells the old udpd why this one gives up, and closes what it took.
func (in *inherited) fail(err error) {
	closeFiles(in.files)
	in.parent.Fail(err)
}

// listener returns the inherited admin or metrics listener.
func (in *inherited) listener(name string) (net.Listener, error) {
	f := in.parent.File(name)
	if f == nil {
		return nil, fmt.Errorf("hand-over: no %s listener", name)
	}
	defer f.Close()
	lis, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("hand-over: %s listener: %w", name, err)
	}
	if ul, ok := lis.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true) // this process owns the socket file now
	}
	return lis, nil
}

// lock returns the inherited lock of the state file, checking that it is
// held (flock locks belong to the open file, which both processes share).
func (in *inherited) lock() (io.Closer, error) {
	f := in.parent.File("lock")
	if f == nil {
		return nil, errors.New("hand-over: no state file lock")
	}
	if err := relock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("hand-over: state file lock: %w", err)
	}
	return f, nil
}

// Upgrade hands this udpd over to a new process of the binary at its path
// (see admin.Upgrader): it freezes listener changes, starts the new
// process with every socket, the admin and metrics listeners and the
// state file's lock, and waits for it to report ready. On a failure the
// new process is killed and this one serves on as before. Once it is
// ready, this one stops taking admin connections, ends WatchStats
// streams, stops reading, hands over its counters and returns; run then
// lets the running admin calls finish and exits.
func (d *daemon) Upgrade(ctx context.Context, timeout time.Duration) (admin.UpgradeResult, error) {
	if !d.upMu.TryLock() {
		return admin.UpgradeResult{}, fmt.Errorf("upgrade: %w", manager.ErrUpgrading)
	}
	defer d.upMu.Unlock()
	if d.leaving.Load() {
		return admin.UpgradeResult{}, fmt.Errorf("upgrade: %w", manager.ErrUpgrading)
	}
	begin := time.Now()
	d.log.Info("upgrade requested", "timeout", timeout)
	handed, err := d.m.Freeze(ctx)
	if err != nil {
		return admin.UpgradeResult{}, fmt.Errorf("upgrade: %w", err)
	}
	child, err := d.startChild(ctx, timeout, handed)
	if err != nil {
		d.m.Thaw()
		d.log.Error("upgrade failed; serving on", "err", err)
		return admin.UpgradeResult{}, err
	}
	// No way back from here: the new process serves.
	d.leaving.Store(true)
	r := admin.UpgradeResult{OldPid: os.Getpid(), NewPid: child.Pid, ReadyAfter: time.Since(begin), Listeners: len(handed)}
	if err := sdNotify("MAINPID=" + strconv.Itoa(child.Pid) + "\nREADY=1"); err != nil {
		d.log.Warn("systemd notification failed", "err", err)
	}
	d.srv.DrainForUpgrade(child.Pid)
	if ul, ok := d.adminLis.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the socket file is the new process's
	}
	// Stop taking admin connections (they wait in the shared backlog for
	// the new process); running calls, this one included, finish.
	go d.srv.Stop(d.cfg.drainTimeout)
	if d.metrics != nil {
		d.metrics.http.Close()
	}
	counters := d.m.Release()
	if err := child.Finish(counters); err != nil {
		d.log.Error("upgrade: counters not handed over", "err", err)
	}
	d.log.Info("handed over to the new udpd", "new_pid", child.Pid, "ready_after", r.ReadyAfter, "listeners", r.Listeners)
	close(d.handedOver)
	return r, nil
}

// startChild starts the new udpd with the sockets of handed and waits
// until it is ready.
func (d *daemon) startChild(ctx context.Context, timeout time.Duration, handed []manager.Handed) (*handoff.Child, error) {
	path, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w: %w", err, handoff.ErrFailed)
	}
	inv := inventory{OldPid: os.Getpid()}
	files := []handoff.File{{Name: "admin", Conn: d.adminLis.(syscall.Conn)}}
	if d.metrics != nil {
		files = append(files, handoff.File{Name: "metrics", Conn: d.metrics.lis.(syscall.Conn)})
	}
	if d.lock != nil {
		files = append(files, handoff.File{Name: "lock", Conn: d.lock.(syscall.Conn)})
	}
	for _, h := range handed {
		socks := h.Listener.Sockets()
		inv.Listeners = append(inv.Listeners, handedListener{Spec: h.Spec, Generation: h.Generation,
			Created: h.Created, Bound: h.Bound, Sockets: len(socks)})
		for i, s := range socks {
			files = append(files, handoff.File{Name: socketName(h.Spec.ID, i), Conn: s})
		}
	}
	// The binary now at the path udpd was started from, under the name it
	// was started with.
	return handoff.Start(ctx, handoff.Options{Path: path, Name: os.Args[0], Args: os.Args[1:], Timeout: timeout}, files, inv)
}

// afterUpgrade ends this process once it has handed over: running admin
// calls finish (within --shutdown-timeout), and this process's copies of
// the listeners and the lock close; the new process holds them.
func (d *daemon) afterUpgrade() error {
	d.srv.Stop(d.cfg.drainTimeout)
	d.stopSampler()
	if d.lock != nil {
		d.lock.Close()
	}
	d.log.Info("udpd exits after the upgrade")
	return nil
}
