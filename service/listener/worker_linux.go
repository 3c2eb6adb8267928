//go:build linux && !udpd_portable

package listener

import (
	"sync/atomic"
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
	l     *Listener
	fd    int  // blocking; the worker's until closeFD (see wait_linux.go)
	owned bool // bound by this process for itself: shutdown(2) reaches no one else
	c     counters

	maxBatch int
	bufs     [][]byte // one receive buffer per message
	rhdrs    []unix.Mmsghdr
	riovs    []unix.Iovec
	names    []unix.RawSockaddrAny
	shdrs    []unix.Mmsghdr // replies waiting to be sent
	siovs    []unix.Iovec
	out      []byte // replies that are not the request uppercased in place
	queued   int

	waiter // how the worker reads, waits and stops (wait_linux.go)

	kernelDrops atomic.Uint64 // the socket's drop count, kept when it closes

	gate gate    // per-datagram policy decisions
	ctl  pktinfo // destination addresses, on wildcard listeners
}

func newWorker(l *Listener, fd int, owned bool, maxBatch int) (*worker, error) {
	w := &worker{l: l, fd: fd, owned: owned, maxBatch: maxBatch}
	w.waiter.init(w)
	w.gate = gate{rules: &l.rules, maxPayload: l.maxPayload}
	if a := l.addr.Addr(); a.IsUnspecified() {
		// A wildcard listener answers from the address each datagram was
		// sent to, which only a control message tells.
		w.ctl = pktinfo{on: true, v6: a.Is6()}
		if err := enablePktinfo(socketConn{w}, w.ctl.v6); err != nil {
			return nil, err
		}
	}
	// Buffers come with the first datagram (see read): a thousand idle
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

// handle answers the n datagrams of the last read.
func (w *worker) handle(n int) {
	var t tally
	now := int64(time.Since(w.l.start)) // monotonic
	w.gate.begin()
	for i := range n {
		h := &w.rhdrs[i]
		if h.Hdr.Namelen == 0 {
			continue // not a datagram: a read woken by shutdown (see wait)
		}
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
	pending := w.shdrs[:w.queued]
	for len(pending) > 0 {
		n, errno := w.send(pending)
		for _, m := range pending[:n] {
			t.sent++
			t.bytesOut += uint64(m.Len)
		}
		pending = pending[n:]
		switch {
		case errno == 0:
		case errno == unix.EAGAIN && !w.stopped.Load():
		case errno == unix.EAGAIN || errno == unix.EPIPE || errno == unix.EBADF:
			t.sendErrors += uint64(len(pending)) // closing: drop the rest
			pending = nil
		default:
			t.sendErrors++ // the first pending reply failed; skip it
			pending = pending[1:]
		}
	}
	w.queued = 0
	w.out = w.out[:0]
}
