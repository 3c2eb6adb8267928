package listener

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a listener's counters, cumulative since Start.
//
// Every datagram received is either answered (DatagramsSent) or counted in
// exactly one drop counter, so once traffic stops
// DatagramsReceived == DatagramsSent + Dropped().
type Stats struct {
	DatagramsReceived uint64
	DatagramsSent     uint64
	BytesReceived     uint64
	BytesSent         uint64
	RepliesTooLarge   uint64 // reply would exceed the largest UDP payload (or MaxReplyRatio)
	SendErrors        uint64 // the kernel refused the reply
	LoopBlocked       uint64 // source is a responder's port, this daemon (Policy.Loops) or caught in an echo loop
	RateLimited       uint64 // source network over its rate (Policy.RateLimit)
	ReadErrors        uint64 // failed reads (not datagrams)
	// KernelDrops counts datagrams the kernel dropped because a socket's
	// receive queue was full (SO_MEMINFO); they never reached the
	// listener, so they are not in DatagramsReceived.
	KernelDrops uint64
	Start       time.Time
}

// Dropped is the number of datagrams received and not answered.
func (s Stats) Dropped() uint64 {
	return s.RepliesTooLarge + s.SendErrors + s.LoopBlocked + s.RateLimited
}

// Add returns the field-wise sum of s and o; the earlier Start wins.
func (s Stats) Add(o Stats) Stats {
	s.DatagramsReceived += o.DatagramsReceived
	s.DatagramsSent += o.DatagramsSent
	s.BytesReceived += o.BytesReceived
	s.BytesSent += o.BytesSent
	s.RepliesTooLarge += o.RepliesTooLarge
	s.SendErrors += o.SendErrors
	s.LoopBlocked += o.LoopBlocked
	s.RateLimited += o.RateLimited
	s.ReadErrors += o.ReadErrors
	s.KernelDrops += o.KernelDrops
	if s.Start.IsZero() || (!o.Start.IsZero() && o.Start.Before(s.Start)) {
		s.Start = o.Start
	}
	return s
}

// counters are one worker's counters. Only that worker writes them, once
// per batch; readers load them at any time. The padding keeps two workers'
// counters off one cache line.
type counters struct {
	datagramsReceived atomic.Uint64
	datagramsSent     atomic.Uint64
	bytesReceived     atomic.Uint64
	bytesSent         atomic.Uint64
	repliesTooLarge   atomic.Uint64
	sendErrors        atomic.Uint64
	loopBlocked       atomic.Uint64
	rateLimited       atomic.Uint64
	readErrors        atomic.Uint64
	_                 [64]byte
}

func (c *counters) load() Stats {
	// Received is loaded last and added first (see add), so a snapshot
	// taken during a batch never shows more answers than datagrams.
	s := Stats{
		DatagramsSent:   c.datagramsSent.Load(),
		BytesSent:       c.bytesSent.Load(),
		RepliesTooLarge: c.repliesTooLarge.Load(),
		SendErrors:      c.sendErrors.Load(),
		LoopBlocked:     c.loopBlocked.Load(),
		RateLimited:     c.rateLimited.Load(),
		ReadErrors:      c.readErrors.Load(),
	}
	s.BytesReceived = c.bytesReceived.Load()
	s.DatagramsReceived = c.datagramsReceived.Load()
	return s
}

// tally is what one batch did; the worker adds it to its counters at once.
type tally struct {
	received, sent, bytesIn, bytesOut, tooLarge, sendErrors uint64
	loopBlocked, rateLimited                                uint64
}

func (c *counters) add(t *tally) {
	// Received first, answers after: see load.
	if t.received != 0 {
		c.datagramsReceived.Add(t.received)
		c.bytesReceived.Add(t.bytesIn)
	}
	if t.sent != 0 {
		c.datagramsSent.Add(t.sent)
		c.bytesSent.Add(t.bytesOut)
	}
	if t.tooLarge != 0 {
		c.repliesTooLarge.Add(t.tooLarge)
	}
	if t.sendErrors != 0 {
		c.sendErrors.Add(t.sendErrors)
	}
	if t.loopBlocked != 0 {
		c.loopBlocked.Add(t.loopBlocked)
	}
	if t.rateLimited != 0 {
		c.rateLimited.Add(t.rateLimited)
	}
	*t = tally{}
}
