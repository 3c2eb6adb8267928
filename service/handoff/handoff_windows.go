package handoff

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// On Windows there is no descriptor passing: the same API, with Start
// failing and no hand-over ever found.

// EnvFD names the descriptor of the hand-off socket in the new process.
const EnvFD = "UDPD_HANDOFF_FD"

// ErrFailed is returned (wrapped, with the reason) by Start.
var ErrFailed = errors.New("upgrade failed")

// File is one descriptor to pass.
type File struct {
	Name string
	Conn syscall.Conn
}

// Options say what to start.
type Options struct {
	Path    string
	Name    string
	Args    []string
	Env     []string
	Timeout time.Duration
}

// Child is a new process that reported ready; there is none on Windows.
type Child struct{ Pid int }

// Parent is the process that started this one; there is none on Windows.
type Parent struct{}

// Start fails: an upgrade hands over unix descriptors.
func Start(context.Context, Options, []File, any) (*Child, error) {
	return nil, fmt.Errorf("upgrade: not supported on Windows: %w", ErrFailed)
}

// Finish does nothing.
func (c *Child) Finish(any) error { return nil }

// Inherit finds no hand-over.
func Inherit(any) (*Parent, error) {
	if _, ok := os.LookupEnv(EnvFD); ok {
		os.Unsetenv(EnvFD)
		return nil, errors.New("hand-over: not supported on Windows")
	}
	return nil, nil
}

// File returns nil.
func (p *Parent) File(string) *os.File { return nil }

// Ready does nothing.
func (p *Parent) Ready() error { return nil }

// Fail does nothing.
func (p *Parent) Fail(error) {}

// Wait returns at once.
func (p *Parent) Wait(context.Context, any) error { return nil }
