package loadgen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// maxBatch is the most datagrams a flow sends or receives per system
	// call.
	maxBatch = 64
	// batchBytes bounds the receive buffers of one flow (and its send
	// buffers), whatever the datagram size.
	batchBytes = 64 << 10
)

// slot holds one of a flow's Window datagrams in flight. Slot i sends
// sequence numbers i, i+Window, i+2*Window, …, so a reply's number names
// its slot and the numbers of a flow never repeat.
type slot struct {
	seq  uint64 // the datagram in flight
	next uint64 // the next datagram's
	sent int64  // when seq was sent (run.now)
	busy bool   // seq is in flight
}

// counters are written by the flow and read by Progress and the Result.
type counters struct {
	sent, received, lost, mismatched, unexpected, refused atomic.Uint64
}

// flow is one socket keeping Window datagrams in flight. Its goroutine
// owns everything but the counters; all of it is allocated before the
// first datagram.
type flow struct {
	r    *run
	conn *net.UDPConn
	io   batchIO

	slots     []slot
	queue     []int32 // slots waiting to send their next datagram; the last goes first
	inflight  int
	credit    int  // datagrams granted by run.take and not yet sent
	exhausted bool // Count is reached: take grants nothing more
	stopping  bool // the run stops: send nothing more

	sendBufs [][]byte // each holds the request; send writes the number in
	recvBufs [][]byte // one byte longer than the reply, to see longer ones
	recvLens []int

	hist histogram
	c    counters
}

func newFlow(r *run) (*flow, error) {
	conn, err := dial(r)
	if err != nil {
		return nil, err
	}
	w := r.cfg.Window
	bufLen := r.payload.replyLen() + 1
	batch := min(w, maxBatch, max(1, batchBytes/bufLen))
	f := &flow{
		r:        r,
		conn:     conn,
		slots:    make([]slot, w),
		queue:    make([]int32, 0, w),
		sendBufs: make([][]byte, batch),
		recvBufs: make([][]byte, batch),
		recvLens: make([]int, batch),
	}
	for i := range f.slots {
		f.slots[i].next = uint64(i)
		f.queue = append(f.queue, int32(w-1-i))
	}
	for i := range batch {
		f.sendBufs[i] = append([]byte(nil), r.payload.request...)
		f.recvBufs[i] = make([]byte, bufLen)
	}
	if err := f.initIO(); err != nil {
		conn.Close()
		return nil, err
	}
	return f, nil
}

// loop sends and receives until the run stops or Count is reached, and
// then until every datagram in flight is answered or lost.
func (f *flow) loop() error {
	tick := f.r.tick
	next := tick
	f.setDeadline(next)
	for {
		if !f.stopping && f.r.stop.Load() {
			f.stopping = true
		}
		if !f.stopping {
			if err := f.send(); err != nil {
				return err
			}
		}
		if f.inflight == 0 && (f.stopping || f.exhausted && f.credit == 0) {
			return nil
		}
		n, err := f.read()
		now := f.r.now()
		switch {
		case err == nil:
			f.handle(n, now)
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, syscall.ECONNREFUSED):
			f.c.refused.Add(1)
		default:
			return fmt.Errorf("receive from %s: %w", f.r.cfg.Server, err)
		}
		if now >= next {
			f.sweep(now)
			next = now + tick
			f.setDeadline(next)
		}
	}
}

// setDeadline makes reads and writes give up at t (run.now), so the loop
// looks for lost datagrams and for the end of the run.
func (f *flow) setDeadline(t int64) {
	f.conn.SetDeadline(f.r.start.Add(time.Duration(t)))
}

// send sends the next datagram of every waiting slot, in batches, as far
// as Count allows.
func (f *flow) send() error {
	for len(f.queue) > 0 {
		k := min(len(f.queue), len(f.sendBufs))
		if need := k - f.credit; need > 0 && !f.exhausted {
			got := f.r.take(need)
			f.credit += got
			f.exhausted = got < need
		}
		k = min(k, f.credit)
		if k == 0 {
			return nil
		}
		batch := f.queue[len(f.queue)-k:]
		for j, si := range batch {
			putSeq(f.sendBufs[j], f.slots[si].next)
		}
		now := f.r.now()
		n, err := f.write(k)
		if n > 0 {
			for _, si := range batch[:n] {
				s := &f.slots[si]
				s.seq, s.next, s.sent, s.busy = s.next, s.next+uint64(len(f.slots)), now, true
			}
			copy(batch, batch[n:])
			f.queue = f.queue[:len(f.queue)-n]
			f.credit -= n
			f.inflight += n
			f.c.sent.Add(uint64(n))
		}
		switch {
		case err == nil:
		case errors.Is(err, syscall.ECONNREFUSED):
			// An ICMP error for an earlier datagram; reporting it
			// cleared it, so the next try sends.
			f.c.refused.Add(1)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil // the socket stayed full: receive, then try again
		default:
			return fmt.Errorf("send to %s: %w", f.r.cfg.Server, err)
		}
	}
	return nil
}

// handle matches the n replies of the last read to their slots, checks
// them, and queues each slot's next datagram.
func (f *flow) handle(n int, now int64) {
	var received, mismatched, unexpected uint64
	w := uint64(len(f.slots))
	for i := range n {
		b := f.recvBufs[i][:f.recvLens[i]]
		seq, ok := seqOf(b)
		s := &f.slots[seq%w]
		if !ok || !s.busy || s.seq != seq {
			unexpected++
			continue
		}
		s.busy = false
		f.inflight--
		f.hist.record(now - s.sent)
		received++
		if !f.r.payload.matches(b, seq) {
			mismatched++
		}
		f.queue = append(f.queue, int32(seq%w))
	}
	f.c.received.Add(received)
	if mismatched > 0 {
		f.c.mismatched.Add(mismatched)
	}
	if unexpected > 0 {
		f.c.unexpected.Add(unexpected)
	}
}

// sweep counts as lost the datagrams that waited Timeout for their reply,
// and queues their slots' next datagrams.
func (f *flow) sweep(now int64) {
	var lost uint64
	for i := range f.slots {
		s := &f.slots[i]
		if s.busy && now-s.sent >= f.r.timeout {
			s.busy = false
			f.inflight--
			lost++
			f.queue = append(f.queue, int32(i))
		}
	}
	if lost > 0 {
		f.c.lost.Add(lost)
	}
}
