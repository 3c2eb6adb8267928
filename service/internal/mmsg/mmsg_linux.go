package mmsg

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Headers makes one message header per buffer, each with one iovec over
// the whole buffer and no address.
func Headers(bufs [][]byte) ([]unix.Mmsghdr, []unix.Iovec) {
	hdrs := make([]unix.Mmsghdr, len(bufs))
	iovs := make([]unix.Iovec, len(bufs))
	for i, buf := range bufs {
		if len(buf) > 0 {
			iovs[i].Base = unsafe.SliceData(buf)
		}
		iovs[i].SetLen(len(buf))
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	return hdrs, iovs
}

// Recv reads up to len(hdrs) datagrams into hdrs and returns how many it
// read. It may block (unless flags or the socket say otherwise), so the
// runtime is told.
func Recv(fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	return call(unix.SYS_RECVMMSG, fd, hdrs, flags, false)
}

// RecvNow is Recv as a raw system call; flags must hold MSG_DONTWAIT.
func RecvNow(fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	return call(unix.SYS_RECVMMSG, fd, hdrs, flags|unix.MSG_DONTWAIT, true)
}

// Send sends the messages of hdrs and returns how many the kernel took;
// an error is about message n (the first not sent).
func Send(fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	return call(unix.SYS_SENDMMSG, fd, hdrs, flags, false)
}

// SendNow is Send as a raw system call; flags must hold MSG_DONTWAIT.
func SendNow(fd uintptr, hdrs []unix.Mmsghdr, flags int) (int, syscall.Errno) {
	return call(unix.SYS_SENDMMSG, fd, hdrs, flags|unix.MSG_DONTWAIT, true)
}

func call(trap, fd uintptr, hdrs []unix.Mmsghdr, flags int, raw bool) (int, syscall.Errno) {
	if len(hdrs) == 0 {
		return 0, 0
	}
	p := uintptr(unsafe.Pointer(&hdrs[0]))
	for {
		var n uintptr
		var e syscall.Errno
		if raw {
			n, _, e = unix.RawSyscall6(trap, fd, p, uintptr(len(hdrs)), uintptr(flags), 0, 0)
		} else {
			n, _, e = unix.Syscall6(trap, fd, p, uintptr(len(hdrs)), uintptr(flags), 0, 0)
		}
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// SegmentSpace is the control buffer size that PutSegment needs.
var SegmentSpace = unix.CmsgSpace(2)

// PutSegment writes a UDP_SEGMENT control message into oob (at least
// SegmentSpace bytes) asking the kernel to cut the message's payload into
// datagrams of size bytes (the last may be shorter), and returns the
// control message's length.
func PutSegment(oob []byte, size int) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(size)
	return SegmentSpace
}
