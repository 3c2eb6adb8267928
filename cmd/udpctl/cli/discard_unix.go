//go:build unix

package cli

import (
	"errors"
	"syscall"
	"time"
)

// discard drops every datagram already queued on the socket: late replies
// to an earlier request, which the next request would otherwise take for
// its own. It reads the socket directly, without blocking: a Read with a
// read deadline in the past would not even look at the queue. At most
// maxDiscard datagrams go, so a server that floods cannot hold it.
func (c *udpClient) discard() {
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return
	}
	c.conn.SetReadDeadline(time.Time{}) // rc.Read too fails past a deadline
	rc.Read(func(fd uintptr) bool {
		for range maxDiscard {
			_, err := syscall.Read(int(fd), c.buf)
			switch {
			case err == nil, errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ECONNREFUSED):
				// A datagram, or the error an earlier ICMP message left.
			default:
				return true // EAGAIN: the queue is empty
			}
		}
		return true
	})
}
