//go:build unix

package daemon

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// notifyUpgrade sends SIGUSR2, the signal that asks for an upgrade, to c.
func notifyUpgrade(c chan<- os.Signal) { signal.Notify(c, syscall.SIGUSR2) }

// relock takes the inherited state file lock again, without waiting: it
// succeeds if the lock is this open file's (shared with the old process).
func relock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }
