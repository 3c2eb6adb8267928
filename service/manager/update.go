package manager

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// LimitFields are the fields of Limits that Update changes, by the names
// a field mask uses.
var LimitFields = []string{"per_second", "burst", "bytes_per_second", "bytes_burst", "limit_loopback", "max_reply_ratio"}

// Update changes the limits of listener id in place: its sockets keep
// serving and its counters keep counting, and the next batch each socket
// reads follows the new limits. fields names the fields of limits to
// apply (see LimitFields); the others keep their values. No fields means
// all of them. A listener without limits of its own starts from the
// daemon's defaults. A changed rate limit starts with fresh token buckets.
func (m *Manager) Update(ctx context.Context, id string, limits Limits, fields []string) (Listener, error) {
	for _, f := range fields {
		if !slices.Contains(LimitFields, f) {
			return Listener{}, fmt.Errorf("update %q: %w", id, &FieldError{Field: "update_mask", Value: f,
				Reason: "is not a field update can change (" + strings.Join(LimitFields, ", ") + ")", Err: ErrInvalidArgument})
		}
	}
	m.change.Lock()
	defer m.change.Unlock()
	if err := m.changeErr(); err != nil {
		return Listener{}, fmt.Errorf("update %q: %w", id, err)
	}
	e, ok := m.byID[id]
	if !ok {
		return Listener{}, fmt.Errorf("update %q: %w", id, ErrNotFound)
	}
	next := mergeLimits(m.limits(e.spec), limits, fields)
	if err := next.Validate(); err != nil {
		return Listener{}, fmt.Errorf("update %q: %w", id, err)
	}
	if e.spec.Limits != nil && *e.spec.Limits == next {
		return m.read(e), nil
	}
	if err := m.checkVersion(ctx); err != nil {
		return Listener{}, fmt.Errorf("update %q: %w", id, err)
	}
	spec := e.spec
	spec.Limits = &next
	if err := m.save(m.specsWith(id, &spec)); err != nil {
		return Listener{}, fmt.Errorf("update %q: %w", id, err)
	}
	m.mu.Lock()
	m.setSpecLimits(e, spec.Limits)
	m.mu.Unlock()
	m.log.Info("listener updated", "id", id, "limits", fmt.Sprintf("%+v", next))
	return m.read(e), nil
}

// setSpecLimits gives e new limits and its sockets the policy made from
// them. Called with m.change and m.mu held.
func (m *Manager) setSpecLimits(e *entry, limits *Limits) {
	e.spec.Limits = limits
	p := m.limits(e.spec).policy(&m.loops)
	for _, g := range e.groups {
		g.SetPolicy(p)
	}
}

// mergeLimits returns cur with the named fields of with (all of them if
// fields is empty).
func mergeLimits(cur, with Limits, fields []string) Limits {
	if len(fields) == 0 {
		return with
	}
	for _, f := range fields {
		switch f {
		case "per_second":
			cur.PerSecond = with.PerSecond
		case "burst":
			cur.Burst = with.Burst
		case "bytes_per_second":
			cur.BytesPerSecond = with.BytesPerSecond
		case "bytes_burst":
			cur.BytesBurst = with.BytesBurst
		case "limit_loopback":
			cur.LimitLoopback = with.LimitLoopback
		case "max_reply_ratio":
			cur.MaxReplyRatio = with.MaxReplyRatio
		}
	}
	return cur
}

// limitChanges lists the fields that differ between two limits, as
// printable values.
func limitChanges(from, to Limits) []FieldChange {
	var out []FieldChange
	add := func(name, a, b string) {
		if a != b {
			out = append(out, FieldChange{Field: "limits." + name, From: a, To: b})
		}
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	add("per_second", f(from.PerSecond), f(to.PerSecond))
	add("burst", strconv.Itoa(from.Burst), strconv.Itoa(to.Burst))
	add("bytes_per_second", f(from.BytesPerSecond), f(to.BytesPerSecond))
	add("bytes_burst", strconv.Itoa(from.BytesBurst), strconv.Itoa(to.BytesBurst))
	add("limit_loopback", strconv.FormatBool(from.LimitLoopback), strconv.FormatBool(to.LimitLoopback))
	add("max_reply_ratio", f(from.MaxReplyRatio), f(to.MaxReplyRatio))
	return out
}
