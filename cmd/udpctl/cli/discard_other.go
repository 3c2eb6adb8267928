//go:build !unix

package cli

import "time"

// discard drops every datagram already queued on the socket: late replies
// to an earlier request, which the next request would otherwise take for
// its own. Without a non-blocking read it waits a millisecond for each.
func (c *udpClient) discard() {
	for range maxDiscard {
		c.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.conn.Read(c.buf); err != nil {
			return
		}
	}
}
