//go:build linux && !udpd_portable

package listener

import (
	"net/netip"
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

	seg       segmenter // replies coalesced for UDP_SEGMENT (gso_linux.go)
	coalesced int       // receives that held several datagrams (UDP_GRO); tests read it
	waiter              // how the worker reads, waits and stops (wait_linux.go)

	kernelDrops atomic.Uint64 // the socket's drop count, kept when it closes

	gate gate    // per-datagram policy decisions
	ctl  pktinfo // destination addresses, on wildcard listeners
}

func newWorker(l *Listener, fd int, owned bool, maxBatch int) (*worker, error) {
	w := &worker{l: l, fd: fd, owned: owned, maxBatch: maxBatch}
	w.waiter.init(w)
	w.gate = newGate(l)
	if a := l.addr.Addr(); a.IsUnspecified() {
		// A wildcard listener answers from the address each datagram was
		// sent to, which only a control message tells.
		w.ctl = pktinfo{on: true, v6: a.Is6()}
		if err := enablePktinfo(socketConn{w}, w.ctl.v6); err != nil {
			return nil, err
		}
	}
	w.ctl.gro = enableGRO(fd)
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
	w.seg.setBatch(n)
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

// handle answers the datagrams of the last read: n receives, each one
// datagram or, with UDP_GRO, several of one size from one source.
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
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			t.received++
			t.bytesIn += uint64(size)
			t.tooLarge++ // cannot happen below 64 KiB; never answer a cut datagram
			continue
		}
		seg := size
		if g := w.ctl.segmentSize(&h.Hdr); g > 0 && g < size {
			seg = g
			w.coalesced++
		}
		src, port := sourceOf(&w.names[i])
		dst, ifindex := w.ctl.dest(&h.Hdr)
		for off := 0; ; off += seg {
			end := min(off+seg, size)
			w.answer(&t, &h.Hdr, w.bufs[i][off:end], src, port, dst, ifindex, now)
			w.handled++
			if end >= size {
				break
			}
		}
		if w.handled >= yieldAfter {
			// Busy for a while: send what is queued, then let the
			// runtime poll the network (see pace in wait_linux.go).
			w.flush(&t)
			w.pace()
		}
	}
	w.flush(&t)
	w.c.add(&t)
}

// answer queues the reply to one datagram, req, received in h from
// src:port and sent to dst, unless the policy refuses it.
func (w *worker) answer(t *tally, h *unix.Msghdr, req []byte, src netip.Addr, port uint16, dst netip.Addr, ifindex uint32, now int64) {
	size := len(req)
	t.received++
	t.bytesIn += uint64(size)
	v, peer := w.gate.admit(src, port, dst, req, now)
	switch v {
	case refuseLoop:
		t.loopBlocked++
		return
	case refuseRate:
		t.rateLimited++
		return
	}
	if w.queued == len(w.shdrs) {
		w.flush(t) // more datagrams than headers: several came in one receive
	}
	reply := req
	if !uppercase.InPlace(req) {
		if cap(w.out)-len(w.out) < uppercase.MaxExpansion*size {
			w.flush(t)
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
		return
	}
	w.gate.sent(peer, reply, now)
	s := &w.shdrs[w.queued]
	s.Hdr.Name = h.Name
	s.Hdr.Namelen = h.Namelen
	w.ctl.reply(w.queued, &s.Hdr, dst, ifindex)
	w.siovs[w.queued].Base = unsafe.SliceData(reply)
	w.siovs[w.queued].SetLen(len(reply))
	w.queued++
}

// flush sends the queued replies, waiting for the socket to take them.
func (w *worker) flush(t *tally) {
	w.sendAll(w.messages(), t)
	w.queued = 0
	w.out = w.out[:0]
}

// sendAll sends msgs, a reply per segment, and counts what happened.
func (w *worker) sendAll(msgs []unix.Mmsghdr, t *tally) {
	pending := msgs
	for len(pending) > 0 {
		n, errno := w.send(pending)
		for _, m := range pending[:n] {
			t.sent += uint64(m.Hdr.Iovlen)
			t.bytesOut += uint64(m.Len)
			if m.Hdr.Iovlen > 1 {
				w.seg.sent++
			}
		}
		pending = pending[n:]
		switch {
		case errno == 0:
		case errno == unix.EAGAIN && !w.stopped.Load():
		case errno == unix.EAGAIN || errno == unix.EPIPE || errno == unix.EBADF:
			for _, m := range pending {
				t.sendErrors += uint64(m.Hdr.Iovlen) // closing: drop the rest
			}
			pending = nil
		case segmented(&pending[0]) && (errno == unix.EINVAL || errno == unix.EIO || errno == unix.EMSGSIZE):
			w.unsegment(&pending[0], errno, t)
			pending = pending[1:]
		default:
			t.sendErrors += uint64(pending[0].Hdr.Iovlen) // the first pending message failed; skip it
			pending = pending[1:]
		}
	}
}
