package manager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// VersionOf returns the version of a configuration: a digest of its specs
// (ordered by id, as Specs returns them). Two daemons running the same
// configuration report the same version, and any change to any listener's
// configuration changes it; counters and bound ports do not.
func VersionOf(specs []Spec) string {
	b, err := json.Marshal(specs)
	if err != nil {
		panic(fmt.Sprintf("version: marshal specs: %v", err)) // plain structs: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Config returns the configuration of every listener, ordered by id, and
// its version.
func (m *Manager) Config() ([]Spec, string) {
	specs := m.Specs()
	return specs, VersionOf(specs)
}

type versionKey struct{}

// IfVersion returns a context under which a change (Start, Stop, Rebind,
// Update, Apply) fails with ErrVersionMismatch unless the configuration's
// version is still version when the change is about to be made: the
// optimistic concurrency of HTTP's If-Match. An empty version matches any.
// A call that changes nothing (a repeated Start) does not check it.
func IfVersion(ctx context.Context, version string) context.Context {
	return context.WithValue(ctx, versionKey{}, version)
}

// checkVersion returns ErrVersionMismatch, wrapped, if ctx asks for
// another version than the current one. Called with m.change held.
func (m *Manager) checkVersion(ctx context.Context) error {
	want, _ := ctx.Value(versionKey{}).(string)
	if want == "" {
		return nil
	}
	if now := VersionOf(m.specs()); now != want {
		return fmt.Errorf("%w (based on %s, now %s)", ErrVersionMismatch, want, now)
	}
	return nil
}
