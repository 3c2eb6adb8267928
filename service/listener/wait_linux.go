//go:build linux && !udpd_portable

package listener

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/udpd/udpd/service/internal/mmsg"
	"golang.org/x/sys/unix"
)

// How a worker reads, waits and stops.
//
// A worker's socket is a blocking file descriptor that the Go runtime's
// netpoller does not watch while the worker is busy. A netpoller
// registration is a waiter on the socket's wait queue, and on loopback every
// reply the kernel frees (sock_wfree) wakes that queue: a cost per datagram
// that a socket nobody waits on does not pay.
//
//   - Hot: recvmmsg(MSG_DONTWAIT) and sendmmsg(MSG_DONTWAIT) as raw system
//     calls. They return at once, and the goroutine keeps its P: no syscall
//     entry and exit, no hand-off of the P to another thread in the middle
//     of a loopback send.
//   - Empty queue: one blocking recvmmsg(MSG_WAITFORONE) through the ordinary
//     Syscall6, so the runtime knows the thread sleeps in the kernel and runs
//     other goroutines, the garbage collector included, on its P. SO_RCVTIMEO
//     (hotWait) bounds it. A full send buffer is waited for the same way.
//   - Cold: after hotWait without a datagram, or when maxBlocked threads are
//     already blocked in reads, the worker parks in the netpoller instead,
//     on a duplicate of its socket that is registered only while it waits.
//     An idle listener holds no thread.
//
// A worker whose queue never empties never waits, so every yieldAfter
// datagrams it yields through the netpoller (see pace), also in the middle
// of a batch (with UDP_GRO a batch may hold thousands): however busy one
// socket is, the admin API and the other listeners keep being served.
//
// Stopping: Shutdown sets the listener's draining flag and shutdown(2)s the
// sockets for reading, which wakes a blocked recvmmsg (it returns one
// message with no address, which handle skips); a drained worker returns
// when a read finds the queue empty or the drain's deadline has passed.
// Close sets stopped and shuts down both directions (a blocked sendmmsg
// gets EPIPE). A parked worker is woken by a read deadline on its park
// descriptor. Sockets that another process may hold (inherited ones, and
// any passed on with Sockets or Release) are never shut down, since that
// would reach the other holder: there the receive and send timeouts
// (hotWait) bound how long a blocked worker takes to notice. The descriptor
// is closed only after its worker has returned (closeFD), so no system
// call ever reaches a reused descriptor.

const (
	// hotWait is how long a blocking read waits before the worker parks
	// in the netpoller; also the socket's send timeout, and the longest a
	// worker on a shared socket takes to notice that it must stop.
	hotWait = 100 * time.Millisecond
	// yieldAfter is how many datagrams a worker handles in a row, without
	// waiting, before it yields to the scheduler: about half a millisecond
	// of work.
	yieldAfter = 256
)

// blockedReaders counts the threads blocked in a worker's read, across
// every listener of the process: each holds an OS thread, and the runtime
// allows 10,000 of them. Beyond maxBlocked, idle workers park in the
// netpoller straight away.
var (
	blockedReaders atomic.Int32
	maxBlocked     = int32(max(64, 8*runtime.GOMAXPROCS(0)))
)

// waiter is the part of a worker that waits and stops.
type waiter struct {
	stopped atomic.Bool // Close: return at once
	handled int         // datagrams handled in a row without waiting
	peekFn  func(fd uintptr) bool

	parkMu   sync.Mutex
	parkFile *os.File // the descriptor a parked worker waits on

	yieldFile *os.File // an eventfd in the netpoller; made at the first yield
	yieldRC   syscall.RawConn
	yieldFn   func(fd uintptr) bool
	yielding  bool

	fdMu     sync.RWMutex // held for reading by users of fd other than the worker
	fdClosed bool
}

func (wt *waiter) init(w *worker) {
	wt.peekFn = w.ready
	wt.yieldFn = w.yielded
}

// serve runs the worker's loop until the listener closes, or until it
// drains and this socket's queue is empty.
func (w *worker) serve() {
	for !w.stopped.Load() {
		if w.l.draining.Load() && time.Now().UnixNano() >= w.l.drainUntil.Load() {
			return // the drain's time is up
		}
		n, errno := w.read()
		if errno == unix.EAGAIN {
			if w.l.draining.Load() {
				return // drained
			}
			if n, errno = w.wait(); errno == unix.EAGAIN {
				continue
			}
		}
		if errno != 0 {
			w.c.readErrors.Add(1)
			continue
		}
		w.handle(n)
		if n == len(w.rhdrs) && n < w.maxBatch {
			w.setBatch(w.maxBatch)
		}
	}
}

// read reads what the socket holds without waiting: up to a batch, or
// EAGAIN when the queue is empty.
func (w *worker) read() (int, syscall.Errno) {
	if len(w.rhdrs) == 0 {
		// No buffers yet: peek (zero bytes, nothing consumed) whether a
		// datagram is waiting before allocating one. Then one buffer; the
		// full batch the first time a read fills it.
		if e := peek(uintptr(w.fd), unix.MSG_DONTWAIT); e != 0 {
			return 0, e
		}
		w.setBatch(1)
	}
	w.resetHeaders()
	return mmsg.RecvNow(uintptr(w.fd), w.rhdrs, 0)
}

func (w *worker) resetHeaders() {
	for i := range w.rhdrs {
		h := &w.rhdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrAny
		h.Flags = 0
		w.ctl.rearm(h)
		w.riovs[i].SetLen(bufSize)
	}
}

// wait waits until the socket holds a datagram or is shut down, and reads
// it if it can; EAGAIN means "read again".
func (w *worker) wait() (int, syscall.Errno) {
	w.handled = 0
	if blockedReaders.Add(1) <= maxBlocked {
		n, errno := w.blockingRead()
		blockedReaders.Add(-1)
		if errno != unix.EAGAIN {
			return n, errno
		}
		// hotWait passed without a datagram.
	} else {
		blockedReaders.Add(-1)
	}
	if !w.stopped.Load() && !w.l.draining.Load() {
		w.park()
	}
	return 0, unix.EAGAIN
}

// blockingRead is a read that waits in the kernel for the first datagram,
// up to hotWait (SO_RCVTIMEO), and then takes what else is queued.
func (w *worker) blockingRead() (int, syscall.Errno) {
	if len(w.rhdrs) == 0 {
		if e := peek(uintptr(w.fd), 0); e != 0 {
			return 0, e
		}
		return 0, unix.EAGAIN // read again, allocating a buffer
	}
	w.resetHeaders()
	return mmsg.Recv(uintptr(w.fd), w.rhdrs, unix.MSG_WAITFORONE)
}

// peek waits (flags 0) or checks (MSG_DONTWAIT) for a datagram without
// reading it; success may also mean the socket was shut down.
func peek(fd uintptr, flags int) syscall.Errno {
	for {
		var e syscall.Errno
		if flags&unix.MSG_DONTWAIT != 0 {
			_, _, e = unix.RawSyscall6(unix.SYS_RECVFROM, fd, 0, 0, uintptr(unix.MSG_PEEK|flags), 0, 0)
		} else {
			_, _, e = unix.Syscall6(unix.SYS_RECVFROM, fd, 0, 0, uintptr(unix.MSG_PEEK|flags), 0, 0)
		}
		if e != unix.EINTR {
			return e
		}
	}
}

// park waits in the netpoller until the socket is readable or shut down.
// The socket is registered for the wait only, through a duplicate
// descriptor (a registration lasts as long as its descriptor).
func (w *worker) park() {
	// The netpoller takes only non-blocking descriptors; the flag belongs
	// to the socket, shared by both descriptors, and only the worker reads
	// it, so it is set for the registration and cleared again.
	if err := unix.SetNonblock(w.fd, true); err != nil {
		return
	}
	dup, err := unix.FcntlInt(uintptr(w.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		unix.SetNonblock(w.fd, false)
		return
	}
	f := os.NewFile(uintptr(dup), "udp")
	unix.SetNonblock(w.fd, false)
	w.parkMu.Lock()
	w.parkFile = f
	w.parkMu.Unlock()
	// Whoever stops the worker sets its flag, then looks for parkFile:
	// either it finds the file, or the flag is seen here.
	if rc, err := f.SyscallConn(); err == nil && !w.stopped.Load() && !w.l.draining.Load() {
		rc.Read(w.peekFn)
	}
	w.parkMu.Lock()
	w.parkFile = nil
	w.parkMu.Unlock()
	f.Close()
}

// unpark wakes the worker if it is parked.
func (w *worker) unpark() {
	w.parkMu.Lock()
	defer w.parkMu.Unlock()
	if w.parkFile != nil {
		w.parkFile.SetReadDeadline(time.Unix(1, 0))
	}
}

// ready is park's RawConn callback: false parks until the socket is
// readable (a datagram, or shut down), or the worker is told to stop.
func (w *worker) ready(fd uintptr) bool {
	return peek(fd, unix.MSG_DONTWAIT) != unix.EAGAIN || w.stopped.Load() || w.l.draining.Load()
}

// pace yields once handle has answered yieldAfter datagrams in a row
// (counted in handled; a wait starts the count again), between two
// receives. A worker that never waits would otherwise run until the
// runtime preempts it (10 ms at a time), and goroutines woken by the
// network (the admin API, other listeners) would wait as long.
func (w *worker) pace() {
	w.handled = 0
	w.yield()
}

// yield parks the worker until the runtime next polls the network, which
// it does before it resumes the worker: goroutines that the network woke
// meanwhile run first. (runtime.Gosched would not do: with every P busy,
// the scheduler finds the worker again in its run queue and polls the
// network only every 10 ms.) The worker writes its eventfd, registered
// with the netpoller, and waits for it to be readable.
func (w *worker) yield() {
	if w.yieldFile == nil {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			runtime.Gosched()
			return
		}
		w.yieldFile = os.NewFile(uintptr(fd), "yield")
		if w.yieldRC, err = w.yieldFile.SyscallConn(); err != nil {
			runtime.Gosched()
			return
		}
	}
	w.yielding = false
	w.yieldRC.Read(w.yieldFn)
}

// yielded is yield's RawConn callback: the first call signals the eventfd
// and parks; the second, once the netpoller saw it, resets it.
func (w *worker) yielded(fd uintptr) bool {
	var v [8]byte
	if !w.yielding {
		w.yielding = true
		v[0] = 1
		unix.Write(int(fd), v[:])
		return false
	}
	unix.Read(int(fd), v[:])
	return true
}

// send sends what it can of hdrs, and waits (up to hotWait, SO_SNDTIMEO)
// while the socket's send buffer is full.
func (w *worker) send(hdrs []unix.Mmsghdr) (int, syscall.Errno) {
	n, errno := mmsg.SendNow(uintptr(w.fd), hdrs, 0)
	if errno == unix.EAGAIN && !w.stopped.Load() {
		n, errno = mmsg.Send(uintptr(w.fd), hdrs, 0)
	}
	return n, errno
}

// wake makes the worker notice that the listener drains (the flag is
// set): a blocked read returns, a parked worker wakes.
func (w *worker) wake() {
	w.interrupt(unix.SHUT_RD)
}

// stop makes the worker return as soon as it can, dropping what its
// socket holds.
func (w *worker) stop() {
	w.stopped.Store(true)
	w.interrupt(unix.SHUT_RDWR)
}

func (w *worker) interrupt(how int) {
	if w.owned && !w.l.shared.Load() {
		w.withFD(func(fd int) { unix.Shutdown(fd, how) })
	}
	w.unpark()
}

// withFD runs f on the socket unless it is closed.
func (w *worker) withFD(f func(fd int)) {
	w.fdMu.RLock()
	defer w.fdMu.RUnlock()
	if !w.fdClosed {
		f(w.fd)
	}
}

// closeFD closes the socket once its worker has returned (or never ran),
// keeping its final drop count.
func (w *worker) closeFD() error {
	w.drops()
	w.fdMu.Lock()
	defer w.fdMu.Unlock()
	if w.fdClosed {
		return nil
	}
	w.fdClosed = true
	if w.yieldFile != nil {
		w.yieldFile.Close()
	}
	return os.NewSyscallError("close", unix.Close(w.fd))
}

// drops returns the number of datagrams the kernel dropped because the
// socket's receive queue was full (SO_MEMINFO's SK_MEMINFO_DROPS), or the
// last number read if the socket is closed. It is read when stats are, so
// the datagram path pays nothing for it.
func (w *worker) drops() uint64 {
	var info [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(info))
	errno := unix.EBADF
	w.withFD(func(fd int) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if errno != 0 || size < (unix.SK_MEMINFO_DROPS+1)*4 {
		return w.kernelDrops.Load()
	}
	// Keep the largest value seen: a reader that raced Close must not
	// store an older count over the final one.
	d := uint64(info[unix.SK_MEMINFO_DROPS])
	for {
		old := w.kernelDrops.Load()
		if d <= old {
			return old
		}
		if w.kernelDrops.CompareAndSwap(old, d) {
			return d
		}
	}
}

// socketConn is a worker's socket as a syscall.Conn, for Sockets.
type socketConn struct{ w *worker }

func (c socketConn) SyscallConn() (syscall.RawConn, error) { return c, nil }

// Control runs f on the socket, unless it is closed.
func (c socketConn) Control(f func(fd uintptr)) error {
	closed := true
	c.w.withFD(func(fd int) { closed = false; f(uintptr(fd)) })
	if closed {
		return os.ErrClosed
	}
	return nil
}

func (socketConn) Read(func(fd uintptr) bool) error  { return errors.ErrUnsupported }
func (socketConn) Write(func(fd uintptr) bool) error { return errors.ErrUnsupported }
