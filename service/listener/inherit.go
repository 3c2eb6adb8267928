package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/udpd/udpd/service/uppercase"
	"golang.org/x/sys/unix"
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
	var fds []int
	fail := func(err error) (*Listener, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, err
	}
	var bound netip.AddrPort
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			return fail(fmt.Errorf("listen from %s: %w", f.Name(), err))
		}
		fd, a, err := adopt(rc)
		if fd >= 0 {
			fds = append(fds, fd)
		}
		if err != nil {
			return fail(fmt.Errorf("listen from %s: %w", f.Name(), err))
		}
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
	return build(fds, false, bound, batch, cfg.Policy)
}

// adopt duplicates a passed UDP socket for a worker and sets it up like
// the sockets Listen makes (see setup): systemd sets SO_REUSEADDR on the
// sockets it binds; off, no other socket can bind the port from now on.
// It returns the new descriptor (or -1) and the socket's bound address.
func adopt(rc syscall.RawConn) (int, netip.AddrPort, error) {
	fd := -1
	var bound netip.AddrPort
	var serr error
	err := rc.Control(func(s uintptr) {
		typ, err := unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_TYPE)
		if err != nil {
			serr = os.NewSyscallError("getsockopt SO_TYPE", err)
			return
		}
		sa, err := unix.Getsockname(int(s))
		if err != nil {
			serr = os.NewSyscallError("getsockname", err)
			return
		}
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			bound = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			bound = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		}
		if typ != unix.SOCK_DGRAM || !bound.IsValid() {
			serr = fmt.Errorf("a %s socket, not UDP", socketKind(typ, sa))
			return
		}
		if fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0); err != nil {
			fd, serr = -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
			return
		}
		serr = setup(fd)
	})
	if err != nil {
		return fd, bound, err
	}
	return fd, bound, serr
}

// socketKind names a socket that is not UDP for an error message.
func socketKind(typ int, sa unix.Sockaddr) string {
	family := "inet"
	if _, ok := sa.(*unix.SockaddrUnix); ok {
		family = "unix"
	}
	kind := "datagram"
	if typ == unix.SOCK_STREAM {
		kind = "stream"
	}
	return family + " " + kind
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
		s[i] = socketConn{w}
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
