//go:build linux && !udpd_portable

package listener

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Receives take UDP generic receive offload (UDP_GRO) where the kernel
// offers it: datagrams of one flow that arrive together, of one size (the
// last may be shorter), come up as one buffer with a UDP_GRO control
// message giving the size, instead of one receive each. The kernel does
// this for segmented (UDP_SEGMENT) sends on loopback, which it would
// otherwise cut up on the way in, and for flows a network card or the
// stack's GRO coalesces. handle answers each datagram of such a buffer on
// its own, through the same policy, and the replies, one size to one
// destination, leave segmented again (gso_linux.go).

// enableGRO turns UDP_GRO on; kernels without it (before 5.0) refuse,
// and then each datagram comes up alone, as before.
func enableGRO(fd int) bool {
	return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
}

// segmentSize returns the size of the datagrams coalesced in the receive
// of h (the UDP_GRO control message), or 0 if it holds one datagram.
func (c *pktinfo) segmentSize(h *unix.Msghdr) int {
	if !c.gro || h.Control == nil || h.Controllen == 0 {
		return 0
	}
	ctl := unsafe.Slice(h.Control, min(int(h.Controllen), ctlSize))
	for {
		cm, data, rest, ok := nextCmsg(ctl)
		if !ok {
			return 0
		}
		if cm.Level == unix.SOL_UDP && cm.Type == unix.UDP_GRO && len(data) >= 4 {
			return int(*(*int32)(unsafe.Pointer(&data[0])))
		}
		ctl = rest
	}
}
