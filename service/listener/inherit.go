package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/udpd/udpd/service/uppercase"
)

// FromFiles makes a Listener of UDP sockets that another process bound and
// passed to this one: systemd (socket activation) or the udpd that handed
// its sockets over in an upgrade. Each file is one worker's socket; all
// must be UDP sockets bound to the same address. cfg.Addr and cfg.Workers
// are not used. FromFiles duplicates the descriptors: the caller closes
// the files.
func FromFiles(files []*os.File, cfg Config) (*Listener, error) {
	if len(files) == 0 {
		return nil, errors.New("listen from files: no socket")
	}
	batch := cfg.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	uppercase.Prepare()
	var socks []sock
	fail := func(err error) (*Listener, error) {
		for _, s := range socks {
			closeSock(s)
		}
		return nil, err
	}
	var bound netip.AddrPort
	for i, f := range files {
		s, a, err := adoptFile(f)
		if err != nil {
			return fail(fmt.Errorf("listen from %s: %w", f.Name(), err))
		}
		socks = append(socks, s)
		if a.Port() == 0 {
			return fail(fmt.Errorf("listen from %s: socket is not bound", f.Name()))
		}
		if !unicast(a.Addr()) {
			return fail(fmt.Errorf("listen from %s: bound to %s: %w", f.Name(), a, ErrNotUnicast))
		}
		if i == 0 {
			bound = a
		} else if a != bound {
			return fail(fmt.Errorf("listen from %s: bound to %s, the other sockets to %s", f.Name(), a, bound))
		}
	}
	return build(socks, false, bound, batch, cfg.Policy)
}

// Sockets are the listener's sockets, one per worker, for passing to
// another process: duplicate the descriptor inside SyscallConn's Control
// (Read and Write are not supported). From then on the listener never
// shuts the sockets down (shutdown(2) would reach the other holder), so
// stopping it may take up to a receive timeout.
func (l *Listener) Sockets() []syscall.Conn {
	l.shared.Store(true)
	s := make([]syscall.Conn, len(l.workers))
	for i, w := range l.workers {
		s[i] = w.sysConn()
	}
	return s
}

// Release stops the listener without draining, for a hand-over: every
// worker finishes the batch in hand (its replies are sent) and reads no
// more, and this process's sockets are closed. What the sockets still
// hold stays queued for the process that holds them too. The counters are
// final when Release returns.
func (l *Listener) Release() error {
	l.shared.Store(true) // whatever happened before: another process holds the sockets now
	l.shutdownOnce.Do(func() {
		// A drain whose deadline has passed reads nothing.
		l.drainUntil.Store(time.Now().UnixNano())
		l.draining.Store(true)
		for _, w := range l.workers {
			w.wake()
		}
		go l.serveOnce.Do(l.run)
	})
	<-l.done
	return l.Close()
}
