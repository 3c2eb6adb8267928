package listener

import (
	"fmt"
	"syscall"
)

// controlExclusive sets SO_EXCLUSIVEADDRUSE before the bind: on Windows
// any other socket that sets SO_REUSEADDR may otherwise bind the same
// port and take datagrams meant for udpd, whatever this socket set.
func controlExclusive(_, _ string, rc syscall.RawConn) error {
	const soExclusiveAddrUse = ^syscall.SO_REUSEADDR
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, soExclusiveAddrUse, 1)
		if serr != nil {
			serr = fmt.Errorf("setsockopt SO_EXCLUSIVEADDRUSE: %w", serr)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
