package manager

import (
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/udpd/udpd/service/listener"
)

// Defaults and limits.
const (
	DefaultMaxListeners = 1024
	DefaultDrainTimeout = time.Second
	MaxDrainTimeout     = time.Minute
	// MaxRequestIDLen is the longest request id Start accepts.
	MaxRequestIDLen = 128
	// maxRequestIDs and maxRequestIDBytes bound the table of request ids
	// Start remembers, in entries and in bytes (see requestIDs.cost).
	maxRequestIDs     = 4096
	maxRequestIDBytes = 512 << 10
)

// State is where a listener is in its life.
type State int

// States.
const (
	StateRunning  State = iota + 1
	StateStopped        // closed: what Stop returns
	StateDraining       // stopped, still answering what its sockets hold
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateStopped:
		return "stopped"
	case StateDraining:
		return "draining"
	}
	return "unknown"
}

// Spec is a listener's durable configuration: what a Store saves and what
// a restarted daemon starts again.
type Spec struct {
	ID      string  `json:"id"`
	Address string  `json:"address"`
	Workers int     `json:"workers,omitempty"` // 0: the daemon's default
	Limits  *Limits `json:"limits,omitempty"`  // nil: the daemon's default
}

// Listener describes a listener at one instant.
type Listener struct {
	ID           string
	Address      string         // as asked for
	BoundAddress netip.AddrPort // port 0 resolved
	State        State
	Generation   uint64 // 1 after start, +1 per rebind
	Created      time.Time
	Bound        time.Time
	Workers      int
	Limits       Limits // in force
	Stats        listener.Stats
}

// ListenerStats are one listener's counters.
type ListenerStats struct {
	ID    string
	Stats listener.Stats
}

// Store saves the listeners' configuration. Save must be atomic: after a
// crash the store holds either the old or the new list.
type Store interface {
	Save(specs []Spec) error
}

// Options configure a Manager.
type Options struct {
	Store        Store        // nil saves nothing
	Logger       *slog.Logger // nil discards
	MaxListeners int          // 0 means DefaultMaxListeners
	Workers      int          // default sockets per listener; 0 means GOMAXPROCS
	Limits       Limits       // for listeners started without their own
	// LoopPorts are source ports never answered, besides
	// listener.ClassicResponderPorts: the ports of other responders, such
	// as other udpd daemons on ports other than 12000, so that the two
	// cannot be made to answer each other. The daemon's own listener
	// addresses are never answered either.
	LoopPorts []uint16
}

// ValidateSpec checks every field of spec (an empty ID is valid: Start
// makes one) and returns the parsed address. Its errors are *FieldError.
func ValidateSpec(spec Spec) (netip.AddrPort, error) {
	if spec.ID != "" {
		if err := ValidateID(spec.ID); err != nil {
			return netip.AddrPort{}, err
		}
	}
	if spec.Workers < 0 || spec.Workers > 1024 {
		return netip.AddrPort{}, &FieldError{Field: "workers", Value: strconv.Itoa(spec.Workers), Reason: "must be from 0 to 1024", Err: ErrInvalidArgument}
	}
	addr, err := ParseAddress(spec.Address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if spec.Limits != nil {
		if err := spec.Limits.Validate(); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return addr, nil
}

func sameLimits(a, b *Limits) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func drainTimeout(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0 || d > MaxDrainTimeout:
		return 0, &FieldError{Field: "drain_timeout", Value: d.String(), Reason: "must be from 0 to 1m", Err: ErrInvalidArgument}
	case d == 0:
		return DefaultDrainTimeout, nil
	}
	return d, nil
}
