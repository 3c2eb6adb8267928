//go:build darwin || ios

package handoff

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketpair makes the hand-off socket pair, close-on-exec. Darwin has no
// SOCK_CLOEXEC: the flag is set after, under the fork lock, so that no
// process this one starts meanwhile inherits the pair.
func socketpair() ([2]int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return pair, err
	}
	unix.CloseOnExec(pair[0])
	unix.CloseOnExec(pair[1])
	return pair, nil
}
