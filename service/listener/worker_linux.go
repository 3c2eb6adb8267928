package listener

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/udpd/udpd/service/uppercase"
	"golang.org/x/sys/unix"
)

const (
	bufSize = 1 << 16 // holds any UDP payload
	// outSize holds the uppercase of at least one largest datagram; the
	// replies of non-ASCII datagrams of one batch share it.
	outSize = 4 << 16
)

// worker owns one socket of a listener. Everything it touches per datagram
// was allocated before the first datagram arrived, so the loop allocates
// nothing; only the worker writes its buffers and counters.
type worker struct {
	l    *Listener
	conn *net.UDPConn
	rc   syscall.RawConn
	c    counters

	maxBatch int
	bufs     [][]byte // one receive buffer per message
	rhdrs    []unix.Mmsghdr
	riovs    []unix.Iovec
	names    []unix.RawSockaddrAny
	shdrs    []unix.Mmsghdr // replies waiting to be sent
	siovs    []unix.Iovec
	out      []byte // replies that are not the request uppercased in place
	queued   int

	// Results of the last recvmmsg and sendmmsg, set inside the RawConn
	// callbacks (method values made once, so calling them allocates
	// nothing).
	readFn, drainFn, writeFn func(fd uintptr) bool
	n, sent                  int
	errno, sendErrno         syscall.Errno
	pending                  []unix.Mmsghdr

	kernelDrops atomic.Uint64 // the socket's drop count, kept when it closes

	gate gate    // per-datagram policy decisions
	ctl  pktinfo // destination addresses, on wildcard listeners
}

func newWorker(l *Listener, c *net.UDPConn, maxBatch int) (*worker, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	w := &worker{l: l, conn: c, rc: rc, maxBatch: maxBatch}
	w.gate = gate{rules: &l.rules, maxPayload: l.maxPayload}
	if a := l.addr.Addr(); a.IsUnspecified() {
		// A wildcard listener answers from the address each datagram was
		// sent to, which only a control message tells.
		w.ctl = pktinfo{on: true, v6: a.Is6()}
		if err := enablePktinfo(rc, w.ctl.v6); err != nil {
			return nil, err
		}
	}
	w.readFn = w.read
	w.drainFn = w.drainRead
	w.writeFn = w.write
	// Buffers come with the first datagram (see recvmmsg): a thousand idle
	// listeners cost no receive memory.
	return w, nil
}

func (w *worker) setBatch(n int) {
	for len(w.bufs) < n {
		w.bufs = append(w.bufs, make([]byte, bufSize))
	}
	w.rhdrs = make([]unix.Mmsghdr, n)
	w.riovs = make([]unix.Iovec, n)
	w.names = make([]unix.RawSockaddrAny, n)
	w.shdrs = make([]unix.Mmsghdr, n)
	w.siovs = make([]unix.Iovec, n)
	for i := range n {
		w.riovs[i].Base = &w.bufs[i][0]
		h := &w.rhdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		h.Iov = &w.riovs[i]
		h.SetIovlen(1)
		w.shdrs[i].Hdr.Iov = &w.siovs[i]
		w.shdrs[i].Hdr.SetIovlen(1)
	}
	w.ctl.setup(w.rhdrs)
}

// serve runs the worker's loop until its socket is closed, or until the
// listener drains and this socket's queue is empty.
func (w *worker) serve() {
	for {
		err := w.rc.Read(w.readFn)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && w.l.draining.Load():
			w.drain()
			return
		case errors.Is(err, net.ErrClosed):
			return
		default:
			w.c.readErrors.Add(1)
			continue
		}
		if w.errno != 0 {
			w.c.readErrors.Add(1)
			continue
		}
		n := w.n
		w.handle(n)
		if n == len(w.rhdrs) && n < w.maxBatch {
			w.setBatch(w.maxBatch)
		}
	}
}

// wake makes a worker blocked in serve notice that the listener drains.
func (w *worker) wake() { w.conn.SetReadDeadline(time.Unix(1, 0)) }

// drain answers what the socket holds until its queue is empty or the
// listener's drain deadline passes.
func (w *worker) drain() {
	until := time.Unix(0, w.l.drainUntil.Load())
	if err := w.conn.SetReadDeadline(until); err != nil {
		return
	}
	for time.Now().Before(until) {
		if err := w.rc.Read(w.drainFn); err != nil {
			return // deadline or closed
		}
		if w.errno == unix.EAGAIN {
			return // empty
		}
		if w.errno != 0 {
			w.c.readErrors.Add(1)
			continue
		}
		w.handle(w.n)
	}
}

// recvmmsg and sendmmsg never block (MSG_DONTWAIT), so they are made as
// raw system calls: the goroutine keeps its P instead of announcing a
// syscall, and the runtime does not hand the P to another thread when a
// loopback sendmmsg (which runs the receiver's path too) takes a while.
// That hand-off cost udpd about 15% of its throughput against the C
// reference.
func (w *worker) recvmmsg(fd uintptr) {
	if len(w.rhdrs) == 0 {
		// No buffers yet: peek (zero bytes, nothing consumed) whether a
		// datagram is waiting before allocating one. Then one buffer; the
		// full batch the first time a read fills it.
		for {
			_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, 0, 0, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
			if e == unix.EINTR {
				continue
			}
			if e == unix.EAGAIN {
				w.n, w.errno = 0, e
				return
			}
			break
		}
		w.setBatch(1)
	}
	for i := range w.rhdrs {
		h := &w.rhdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrAny
		h.Flags = 0
		w.ctl.rearm(h)
		w.riovs[i].SetLen(bufSize)
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&w.rhdrs[0])),
			uintptr(len(w.rhdrs)), unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			w.n, w.errno = int(n), e
			return
		}
	}
}

// read is the RawConn callback of serve: false parks the goroutine until
// the socket is readable.
func (w *worker) read(fd uintptr) bool {
	w.recvmmsg(fd)
	return w.errno != unix.EAGAIN
}

// drainRead never parks: an empty queue ends the drain.
func (w *worker) drainRead(fd uintptr) bool {
	w.recvmmsg(fd)
	return true
}

// handle answers the n datagrams of the last read.
func (w *worker) handle(n int) {
	var t tally
	now := int64(time.Since(w.l.start)) // monotonic
	w.gate.begin()
	for i := range n {
		h := &w.rhdrs[i]
		size := int(h.Len)
		t.received++
		t.bytesIn += uint64(size)
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			t.tooLarge++ // cannot happen below 64 KiB; never answer a cut datagram
			continue
		}
		src, port := sourceOf(&w.names[i])
		dst, ifindex := w.ctl.dest(&h.Hdr)
		req := w.bufs[i][:size]
		v, peer := w.gate.admit(src, port, dst, req, now)
		switch v {
		case refuseLoop:
			t.loopBlocked++
			continue
		case refuseRate:
			t.rateLimited++
			continue
		}
		reply := req
		if !uppercase.InPlace(req) {
			if cap(w.out)-len(w.out) < uppercase.MaxExpansion*size {
				w.flush(&t)
				if w.out == nil {
					w.out = make([]byte, 0, outSize)
				}
			}
			start := len(w.out)
			w.out = uppercase.Append(w.out, req)
			reply = w.out[start:]
		}
		if w.gate.tooLarge(size, len(reply)) {
			t.tooLarge++
			continue
		}
		w.gate.sent(peer, reply, now)
		s := &w.shdrs[w.queued]
		s.Hdr.Name = h.Hdr.Name
		s.Hdr.Namelen = h.Hdr.Namelen
		w.ctl.reply(w.queued, &s.Hdr, dst, ifindex)
		w.siovs[w.queued].Base = unsafe.SliceData(reply)
		w.siovs[w.queued].SetLen(len(reply))
		w.queued++
	}
	w.flush(&t)
	w.c.add(&t)
}

// flush sends the queued replies, waiting for the socket to take them.
func (w *worker) flush(t *tally) {
	w.pending = w.shdrs[:w.queued]
	for len(w.pending) > 0 {
		if err := w.rc.Write(w.writeFn); err != nil {
			t.sendErrors += uint64(len(w.pending)) // socket closed under us
			break
		}
		if w.sendErrno != 0 {
			t.sendErrors++ // the first pending reply failed; skip it
			w.pending = w.pending[1:]
			continue
		}
		for _, m := range w.pending[:w.sent] {
			t.sent++
			t.bytesOut += uint64(m.Len)
		}
		w.pending = w.pending[w.sent:]
	}
	w.queued = 0
	w.out = w.out[:0]
}

// write is the RawConn callback of flush: false parks until writable.
func (w *worker) write(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.pending[0])),
			uintptr(len(w.pending)), unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			w.sent, w.sendErrno = int(n), e
			return e != unix.EAGAIN
		}
	}
}

// drops returns the number of datagrams the kernel dropped because the
// socket's receive queue was full (SO_MEMINFO's SK_MEMINFO_DROPS), or the
// last number read if the socket is closed. It is read when stats are, so
// the datagram path pays nothing for it.
func (w *worker) drops() uint64 {
	var info [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	err := w.rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil || errno != 0 || size < (unix.SK_MEMINFO_DROPS+1)*4 {
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
