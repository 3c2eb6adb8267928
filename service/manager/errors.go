package manager

import (
	"errors"
	"syscall"
)

// Errors returned (wrapped) by the Manager.
var (
	ErrNotFound            = errors.New("listener not found")
	ErrAlreadyExists       = errors.New("listener already exists with other settings")
	ErrInvalidID           = errors.New("invalid listener id")
	ErrInvalidAddress      = errors.New("invalid address")
	ErrInvalidArgument     = errors.New("invalid argument")
	ErrAddressInUse        = errors.New("address in use")
	ErrPermission          = errors.New("permission denied")
	ErrAddressNotAvailable = errors.New("address not available")
	ErrQuotaExceeded       = errors.New("too many listeners")
	ErrNoResources         = errors.New("out of system resources")
	ErrStateSave           = errors.New("saving state failed")
	ErrClosed              = errors.New("manager is shutting down")
	ErrUpgrading           = errors.New("udpd is handing over to a new process")
	ErrVersionMismatch     = errors.New("the configuration changed since the version given")
)

// FieldError says which field of a request is wrong and why. It wraps one
// of the sentinel errors (ErrInvalidAddress, ErrInvalidID, …).
type FieldError struct {
	Field  string // "address", "id", "workers", …
	Value  string
	Reason string
	Err    error
}

func (e *FieldError) Error() string {
	return e.Field + " " + quote(e.Value) + ": " + e.Reason
}

func (e *FieldError) Unwrap() error { return e.Err }

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return "\"" + s + "\""
}

// bindError classifies a failed bind so callers can test it with errors.Is
// against the manager's sentinels as well as the system call's errno.
type bindError struct {
	kind error
	err  error
}

func (e *bindError) Error() string   { return e.err.Error() }
func (e *bindError) Unwrap() []error { return []error{e.kind, e.err} }

func classifyBind(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return &bindError{ErrAddressInUse, err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &bindError{ErrPermission, err}
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EAFNOSUPPORT):
		return &bindError{ErrAddressNotAvailable, err}
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE),
		errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return &bindError{ErrNoResources, err}
	}
	return err
}
