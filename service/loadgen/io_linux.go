package loadgen

import (
	"syscall"

	"github.com/udpd/udpd/service/internal/mmsg"
	"golang.org/x/sys/unix"
)

// maxSegments is the most datagrams the kernel cuts from one message with
// UDP_SEGMENT (UDP_MAX_SEGMENTS).
const maxSegments = 64

// segmentation says whether flows to a loopback server may use UDP
// segmentation offload; tests turn it off to cover plain sendmmsg.
var segmentation = true

// batchIO sends and receives a flow's datagrams in batches with sendmmsg
// and recvmmsg, through the socket's RawConn so the Go scheduler parks the
// goroutine while the socket is not ready.
//
// To a loopback server, a flow also uses UDP segmentation offload
// (UDP_SEGMENT): one message of up to seg datagrams of the same size,
// which the kernel cuts into datagrams before they reach the server's
// socket. The server sees the same datagrams; the generator spends less
// per datagram, so that one core of it can saturate one core of the
// server. A send the kernel refuses with segmentation turns it off.
type batchIO struct {
	rc           syscall.RawConn
	rhdrs, shdrs []unix.Mmsghdr // one datagram each
	riovs, siovs []unix.Iovec
	ghdrs        []unix.Mmsghdr // with segmentation: up to seg datagrams each
	seg          int            // 0: no segmentation

	// The system calls run inside RawConn callbacks (method values made
	// once, so passing them allocates nothing) and leave their results
	// here.
	readFn, writeFn func(fd uintptr) bool
	hdrs            []unix.Mmsghdr // sendmmsg sends hdrs
	n               int
	errno           syscall.Errno
}

func (f *flow) initIO() error {
	rc, err := f.conn.SyscallConn()
	if err != nil {
		return err
	}
	b := &f.io
	b.rc = rc
	b.rhdrs, b.riovs = mmsg.Headers(f.recvBufs)
	b.shdrs, b.siovs = mmsg.Headers(f.sendBufs)
	b.readFn = f.recvmmsg
	b.writeFn = f.sendmmsg
	size := len(f.sendBufs[0])
	seg := min(maxSegments, len(f.sendBufs), MaxSize/size)
	if segmentation && !f.r.cfg.NoSegmentation && seg > 1 && f.r.cfg.Server.Addr().IsLoopback() && b.setSegment(size) == nil {
		b.seg = seg
		b.ghdrs = make([]unix.Mmsghdr, (len(f.sendBufs)+seg-1)/seg)
	}
	return nil
}

// setSegment sets the socket's UDP_SEGMENT size (0 turns it off).
func (b *batchIO) setSegment(size int) error {
	var serr error
	err := b.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, size)
	})
	if err != nil {
		return err
	}
	return serr
}

// read receives up to a batch of replies into recvBufs, waiting until at
// least one arrives or the deadline passes. A reply longer than its buffer
// is cut to the buffer's length.
func (f *flow) read() (int, error) {
	b := &f.io
	if err := b.rc.Read(b.readFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	for i := range b.n {
		f.recvLens[i] = int(b.rhdrs[i].Len)
	}
	return b.n, nil
}

func (f *flow) recvmmsg(fd uintptr) bool {
	b := &f.io
	b.n, b.errno = mmsg.Recv(fd, b.rhdrs, unix.MSG_DONTWAIT)
	return b.errno != unix.EAGAIN // false parks until readable
}

// write sends sendBufs[:k], waiting while the socket is full, and returns
// how many it sent: all of them, or fewer and the error that stopped the
// next.
func (f *flow) write(k int) (int, error) {
	b := &f.io
	sent := 0
	for sent < k {
		// The messages for sendBufs[sent:k].
		m := 0
		if b.seg > 0 {
			for i := sent; i < k; i += b.seg {
				h := &b.ghdrs[m].Hdr
				h.Iov = &b.siovs[i]
				h.SetIovlen(min(b.seg, k-i))
				m++
			}
			b.hdrs = b.ghdrs[:m]
		} else {
			b.hdrs = b.shdrs[sent:k]
		}
		if err := b.rc.Write(b.writeFn); err != nil {
			return sent, err
		}
		for _, h := range b.hdrs[:b.n] {
			sent += int(h.Hdr.Iovlen)
		}
		switch {
		case b.errno == 0:
		case b.seg > 0 && (b.errno == unix.EIO || b.errno == unix.EINVAL || b.errno == unix.EMSGSIZE):
			// The kernel cannot segment on this path: send one
			// datagram per message from now on.
			b.seg = 0
			b.setSegment(0)
		default:
			return sent, b.errno
		}
	}
	return sent, nil
}

func (f *flow) sendmmsg(fd uintptr) bool {
	b := &f.io
	b.n, b.errno = mmsg.Send(fd, b.hdrs, unix.MSG_DONTWAIT)
	return b.errno != unix.EAGAIN // false parks until writable
}
