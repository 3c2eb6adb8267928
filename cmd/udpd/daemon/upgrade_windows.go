package daemon

import (
	"errors"
	"os"
)

// notifyUpgrade does nothing: Windows has no SIGUSR2, and no upgrade (see
// package handoff).
func notifyUpgrade(chan<- os.Signal) {}

// relock fails: there is no hand-over on Windows.
func relock(*os.File) error { return errors.New("not supported on Windows") }
