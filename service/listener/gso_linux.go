//go:build linux && !udpd_portable

package listener

import (
	"bytes"
	"syscall"
	"unsafe"

	"github.com/udpd/udpd/service/internal/mmsg"
	"golang.org/x/sys/unix"
)

// Replies leave with UDP segmentation offload (UDP_SEGMENT) where they can:
// the replies of one batch to the same destination, sent from the same
// source (equal address and equal control messages), of one size (the last
// may be shorter), become one message that the kernel cuts into datagrams.
// The kernel then routes, builds headers and passes the netfilter and
// loopback paths once per message instead of once per datagram.
//
// A destination's replies keep their order: a reply joins only the newest
// message to its destination, or starts a new one. When the kernel refuses
// a segmented message (EINVAL: a segment larger than the path's MTU allows;
// EIO: a device that cannot checksum segments), its replies are sent one
// by one, and after EIO the worker stops segmenting.

const (
	maxSegments = 64  // UDP_MAX_SEGMENTS
	ctlRoom     = 128 // control bytes per segmented message: the reply's own and UDP_SEGMENT
)

// segmenter is the part of a worker that coalesces replies.
type segmenter struct {
	off    bool           // the kernel cannot segment on this socket's path
	hdrs   []unix.Mmsghdr // one message per group
	iovs   []unix.Iovec   // the replies, grouped
	ctl    []byte         // ctlRoom per message
	groups []group
	member []int // reply -> group
	each   []unix.Mmsghdr

	// Only the worker touches these; tests read them once it returned.
	sent, refused int // segmented messages the kernel took, and refused
}

// group is one message being built: replies to one destination.
type group struct {
	first       int // the first reply's index; its header is the group's
	size, total int // of each segment (the first), of all
	count       int
	open        bool // more replies may join
	iov         int  // index of the group's first iovec in iovs
}

func (s *segmenter) setBatch(n int) {
	s.hdrs = make([]unix.Mmsghdr, n)
	s.iovs = make([]unix.Iovec, n)
	s.ctl = make([]byte, n*ctlRoom)
	s.groups = make([]group, 0, n)
	s.member = make([]int, n)
	s.each = make([]unix.Mmsghdr, min(n, maxSegments))
}

// messages returns the queued replies as messages to send: w.shdrs as
// they are when no two replies can share a message.
func (w *worker) messages() []unix.Mmsghdr {
	q := w.queued
	if w.seg.off || q < 2 {
		return w.shdrs[:q]
	}
	s := &w.seg
	s.groups = s.groups[:0]
	for i := range q {
		h := &w.shdrs[i].Hdr
		size := int(w.siovs[i].Len)
		g := -1
		for j := len(s.groups) - 1; j >= 0; j-- {
			gr := &s.groups[j]
			if sameSource(&w.shdrs[gr.first].Hdr, h) {
				if gr.open && size > 0 && size <= gr.size && gr.count < maxSegments && gr.total+size <= w.l.maxPayload {
					g = j
				}
				break // only the newest group of a destination, so its replies keep their order
			}
		}
		if g < 0 {
			g = len(s.groups)
			s.groups = append(s.groups, group{first: i, size: size,
				open: size > 0 && int(h.Controllen) <= ctlRoom-mmsg.SegmentSpace})
		}
		gr := &s.groups[g]
		gr.count++
		gr.total += size
		if size < gr.size {
			gr.open = false // a shorter segment is the last
		}
		s.member[i] = g
	}
	if len(s.groups) == q {
		return w.shdrs[:q]
	}
	iov := 0
	for j := range s.groups {
		s.groups[j].iov = iov
		iov += s.groups[j].count
	}
	for j := range s.groups {
		s.groups[j].count = 0
	}
	for i := range q {
		gr := &s.groups[s.member[i]]
		s.iovs[gr.iov+gr.count] = w.siovs[i]
		gr.count++
	}
	for j := range s.groups {
		gr := &s.groups[j]
		m := &s.hdrs[j]
		m.Hdr = w.shdrs[gr.first].Hdr
		m.Len = 0
		m.Hdr.Iov = &s.iovs[gr.iov]
		m.Hdr.SetIovlen(gr.count)
		if gr.count > 1 {
			ctl := s.ctl[j*ctlRoom : (j+1)*ctlRoom]
			n := 0
			if m.Hdr.Controllen > 0 {
				n = copy(ctl, unsafe.Slice(m.Hdr.Control, m.Hdr.Controllen))
				n = (n + 7) &^ 7 // cmsg alignment
			}
			n += mmsg.PutSegment(ctl[n:], gr.size)
			m.Hdr.Control = &ctl[0]
			m.Hdr.SetControllen(n)
		}
	}
	return s.hdrs[:len(s.groups)]
}

// sameSource reports whether two replies go to the same address with the
// same control messages (the source address, when the reply carries one).
func sameSource(a, b *unix.Msghdr) bool {
	if a.Namelen != b.Namelen || a.Controllen != b.Controllen {
		return false
	}
	if !bytes.Equal(unsafe.Slice(a.Name, a.Namelen), unsafe.Slice(b.Name, b.Namelen)) {
		return false
	}
	return a.Controllen == 0 || bytes.Equal(unsafe.Slice(a.Control, a.Controllen), unsafe.Slice(b.Control, b.Controllen))
}

// segmented reports whether m is a segmented message (more than one reply).
func segmented(m *unix.Mmsghdr) bool { return m.Hdr.Iovlen > 1 }

// unsegment sends the replies of a segmented message that the kernel
// refused, one datagram each, and counts them.
func (w *worker) unsegment(m *unix.Mmsghdr, errno syscall.Errno, t *tally) {
	w.seg.refused++
	if errno == unix.EIO {
		w.seg.off = true
	}
	iovs := unsafe.Slice(m.Hdr.Iov, m.Hdr.Iovlen)
	each := w.seg.each[:len(iovs)]
	for k := range iovs {
		e := &each[k]
		e.Hdr = m.Hdr
		e.Len = 0
		e.Hdr.Iov = &iovs[k]
		e.Hdr.SetIovlen(1)
		// The replies' own control messages come first, UDP_SEGMENT last.
		e.Hdr.SetControllen(int(m.Hdr.Controllen) - mmsg.SegmentSpace)
		if e.Hdr.Controllen == 0 {
			e.Hdr.Control = nil
		}
	}
	w.sendAll(each, t)
}
