// Package manager owns the lifecycle of a daemon's listeners: it is the
// only code that starts, stops, rebinds and lists them, gives them ids,
// keeps their counters across rebinds, and saves their configuration to a
// Store before any change is acknowledged.
//
// Its methods take and return plain Go types. manager never imports gRPC,
// protobuf or the admin API.
//
// The files, by job: types.go (the types and their validation),
// manager.go (the lifecycle: the changes and the locks), read.go (the
// read path), requestids.go (the bounded request-id cache), loops.go (ids,
// addresses and the loop guard), handoff.go (adopting and handing over
// sockets), limits.go, address.go and errors.go.
//
// # Errors
//
// One rule: every error a method returns names the operation and the
// listener it was about ("rebind \"a\" to 127.0.0.1:9: …"), and wraps one
// of the sentinel errors in errors.go with %w, so callers test it with
// errors.Is and never by its text. A bad request field is a *FieldError
// (find it with errors.As), which names the field instead. A failed bind
// also wraps the system call's errno.
package manager
