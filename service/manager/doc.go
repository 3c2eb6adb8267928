// Package manager owns the lifecycle of a daemon's listeners: it is the
// only code that starts, stops, rebinds and lists them, gives them ids,
// keeps their counters across rebinds, and saves their configuration to a
// Store before any change is acknowledged.
//
// Its methods take and return plain Go types and fail with the sentinel
// errors below, wrapped with context; callers test them with errors.Is.
// manager never imports gRPC, protobuf or the admin API.
package manager
