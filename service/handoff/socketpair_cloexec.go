//go:build unix && !darwin && !ios

package handoff

import "golang.org/x/sys/unix"

// socketpair makes the hand-off socket pair, close-on-exec.
func socketpair() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
}
