//go:build !linux || udpd_portable

package listener

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/udpd/udpd/service/uppercase"
)

const (
	bufSize = 1 << 16 // holds any UDP payload
	// outSize holds the uppercase of the largest datagram.
	outSize = uppercase.MaxExpansion * bufSize
	// drainQuiet ends a drain: the portable worker cannot read without
	// waiting, so a queue that stays empty this long counts as empty.
	drainQuiet = 10 * time.Millisecond
	// yieldAfter is how many datagrams a worker handles in a row before
	// it yields (see yield).
	yieldAfter = 256
)

// worker is the portable worker: one socket, one datagram per system call
// (read, uppercase, write), with the same policy, counters and drain as
// the batched Linux worker. It serves every system but Linux, and Linux
// too when built with the udpd_portable tag. Its buffers are made once;
// it allocates nothing per datagram.
type worker struct {
	l    *Listener
	conn *net.UDPConn
	c    counters

	bufs [][]byte // the receive buffer, made when serve starts
	out  []byte   // the reply, when it is not the request uppercased in place

	kernelDrops atomic.Uint64 // always 0: the kernel's drop count is read on Linux only

	handled int     // datagrams since the last yield
	yielder yielder // see yield

	gate gate // per-datagram policy decisions
}

func newWorker(l *Listener, c sock, _ bool, _ int) (*worker, error) {
	w := &worker{l: l, conn: c}
	w.gate = newGate(l)
	return w, nil
}

// serve runs the worker's loop until its socket is closed, or until the
// listener drains and the socket's queue is empty.
func (w *worker) serve() {
	w.alloc()
	for {
		n, from, err := w.conn.ReadFromUDPAddrPort(w.bufs[0])
		switch {
		case err == nil:
		case w.l.closed.Load() || errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, os.ErrDeadlineExceeded) && w.l.draining.Load():
			w.drain()
			return
		default:
			// Also an ICMP error of an earlier reply, which some systems
			// report on the next read.
			w.c.readErrors.Add(1)
			continue
		}
		w.handle(n, from)
		if w.handled++; w.handled >= yieldAfter {
			w.handled = 0
			w.yielder.yield()
		}
	}
}

// alloc makes the receive buffer. Unlike the batched worker, which waits
// for a datagram without reading it, the portable one needs its buffer to
// wait: it makes it when it starts serving.
func (w *worker) alloc() {
	if w.bufs == nil {
		w.bufs = [][]byte{make([]byte, bufSize)}
	}
}

// wake makes a worker blocked in serve notice that the listener drains.
func (w *worker) wake() { w.conn.SetReadDeadline(time.Unix(1, 0)) }

// stop makes the worker return as soon as it can (the listener's closed
// flag is set), dropping what its socket holds.
func (w *worker) stop() { w.conn.SetReadDeadline(time.Unix(1, 0)) }

// closeFD closes the socket once its worker has returned (or never ran).
func (w *worker) closeFD() error {
	w.yielder.close()
	if err := w.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// sysConn is the worker's socket for Sockets.
func (w *worker) sysConn() syscall.Conn { return w.conn }

// drain answers what the socket holds until no datagram comes for
// drainQuiet or the listener's drain deadline passes.
func (w *worker) drain() {
	until := time.Unix(0, w.l.drainUntil.Load())
	w.alloc()
	for !w.l.closed.Load() {
		now := time.Now()
		if !now.Before(until) {
			return
		}
		deadline := now.Add(drainQuiet)
		if until.Before(deadline) {
			deadline = until
		}
		if err := w.conn.SetReadDeadline(deadline); err != nil {
			return
		}
		n, from, err := w.conn.ReadFromUDPAddrPort(w.bufs[0])
		switch {
		case err == nil:
			w.handle(n, from)
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
			return // empty, or closed
		default:
			w.c.readErrors.Add(1)
		}
	}
}

// handle answers one datagram of n bytes from from.
func (w *worker) handle(n int, from netip.AddrPort) {
	t := tally{received: 1, bytesIn: uint64(n)}
	now := int64(time.Since(w.l.start)) // monotonic
	w.gate.begin()
	// The policy sees sources as the Linux worker reports them: unmapped,
	// without zone (from keeps its zone for the reply).
	src := from.Addr().Unmap().WithZone("")
	req := w.bufs[0][:n]
	v, peer := w.gate.admit(src, from.Port(), netip.Addr{}, req, now)
	switch v {
	case refuseLoop:
		t.loopBlocked++
	case refuseRate:
		t.rateLimited++
	default:
		reply := req
		if !uppercase.InPlace(req) {
			if w.out == nil {
				w.out = make([]byte, 0, outSize)
			}
			w.out = uppercase.Append(w.out[:0], req)
			reply = w.out
		}
		if w.gate.tooLarge(n, len(reply)) {
			t.tooLarge++
			break
		}
		w.gate.sent(peer, reply, now)
		if _, err := w.conn.WriteToUDPAddrPort(reply, from); err != nil {
			t.sendErrors++
		} else {
			t.sent++
			t.bytesOut += uint64(len(reply))
		}
	}
	w.c.add(&t)
}

// drops is the kernel's drop count, which only the Linux worker reads.
func (w *worker) drops() uint64 { return w.kernelDrops.Load() }

// yielder lets a worker whose socket always holds a datagram give way to
// the goroutines that the network woke. A read that finds a datagram does
// not wait, and the runtime polls the network only when a P has nothing
// else to run (or every 10 ms, from sysmon): without a pause, the admin
// API and other listeners would wait that long for every step (see
// TestBusyWorkerDoesNotStallDaemon). runtime.Gosched would not do: the
// scheduler finds the worker again before it polls. So the worker waits,
// through the network poller, for a datagram it sends itself on a private
// pair of loopback sockets; the poller polls the network before the
// worker runs again.
type yielder struct {
	conn   *net.UDPConn // the waiting side; nil until the first yield
	peer   *net.UDPConn // connected to conn
	rc     syscall.RawConn
	fn     func(fd uintptr) bool
	parked bool // wait has been called once
	sent   bool // and sent the datagram
	buf    [1]byte
	failed bool // the sockets could not be made: Gosched instead
}

func (y *yielder) yield() {
	if y.conn == nil && !y.failed && !y.open() {
		y.failed = true
	}
	if y.failed {
		runtime.Gosched() // better than nothing
		return
	}
	y.parked, y.sent = false, false
	y.rc.Read(y.fn)
	if y.sent {
		y.conn.ReadFromUDPAddrPort(y.buf[:]) // there: the poller said so
	}
}

// wait is the callback of yield's read. Its first call sends the datagram
// and says "not yet", so the worker parks until the poller reports it;
// the second ends the wait. The datagram is sent from inside the read,
// after the read has reset the socket's readiness: sent before, the
// poller could report it (on another P) before the reset, and the worker
// would wait for ever.
func (y *yielder) wait(uintptr) bool {
	if y.parked {
		return true
	}
	y.parked = true
	_, err := y.peer.Write(y.buf[:])
	y.sent = err == nil
	return !y.sent // no datagram will come: do not wait
}

func (y *yielder) open() bool {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	p, err := net.DialUDP("udp", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		c.Close()
		return false
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		p.Close()
		return false
	}
	y.conn, y.peer, y.rc, y.fn = c, p, rc, y.wait
	return true
}

func (y *yielder) close() {
	if y.conn != nil {
		y.conn.Close()
		y.peer.Close()
	}
}
