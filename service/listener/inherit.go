package listener

import (
	"errors"
	"fmt"
	"net"
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
	conns := make([]*net.UDPConn, 0, len(files))
	fail := func(err error) (*Listener, error) {
		for _, c := range conns {
			c.Close()
		}
		return nil, err
	}
	var bound netip.AddrPort
	for i, f := range files {
		pc, err := net.FilePacketConn(f)
		if err != nil {
			return fail(fmt.Errorf("listen from %s: %w", f.Name(), err))
		}
		c, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			return fail(fmt.Errorf("listen from %s: a %s socket, not UDP", f.Name(), pc.LocalAddr().Network()))
		}
		conns = append(conns, c)
		a := c.LocalAddr().(*net.UDPAddr).AddrPort()
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if a.Port() == 0 {
			return fail(fmt.Errorf("listen from %s: socket is not bound", f.Name()))
		}
		if !unicast(a.Addr()) {
			return fail(fmt.Errorf("listen from %s: bound to %s: %w", f.Name(), a, ErrNotUnicast))
		}
		// systemd sets SO_REUSEADDR on the sockets it binds; off, no other
		// socket can bind the port from now on (see controlExclusive).
		rc, err := c.SyscallConn()
		if err != nil {
			return fail(fmt.Errorf("listen from %s: %w", f.Name(), err))
		}
		if err := controlExclusive("", "", rc); err != nil {
			return fail(fmt.Errorf("listen from %s: %w", f.Name(), err))
		}
		if i == 0 {
			bound = a
		} else if a != bound {
			return fail(fmt.Errorf("listen from %s: bound to %s, the other sockets to %s", f.Name(), a, bound))
		}
	}
	return build(conns, bound, batch, cfg.Policy)
}

// Sockets are the listener's sockets, one per worker, for passing to
// another process (duplicate the descriptor with SyscallConn; never close
// or read them).
func (l *Listener) Sockets() []syscall.Conn {
	s := make([]syscall.Conn, len(l.workers))
	for i, w := range l.workers {
		s[i] = w.conn
	}
	return s
}

// Release stops the listener without draining, for a hand-over: every
// worker finishes the batch in hand (its replies are sent) and reads no
// more, and this process's sockets are closed. What the sockets still
// hold stays queued for the process that holds them too. The counters are
// final when Release returns.
func (l *Listener) Release() error {
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
