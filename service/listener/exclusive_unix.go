//go:build unix

package listener

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// controlExclusive turns SO_REUSEADDR off. On a UDP socket it would let
// any other socket that sets it too, any user's, bind the same port and
// take datagrams meant for udpd. Go sets it itself for multicast
// addresses (which Listen refuses); this makes sure no listener socket
// ever has it, whatever the net package decides.
func controlExclusive(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = noReuseAddr(int(fd)) })
	if err != nil {
		return err
	}
	return serr
}

func noReuseAddr(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0); err != nil {
		return fmt.Errorf("setsockopt SO_REUSEADDR: %w", err)
	}
	return nil
}
