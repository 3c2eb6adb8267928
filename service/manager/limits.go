package manager

import (
	"math"
	"strconv"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/ratelimit"
)

// Limits protect a listener from abuse. The zero Limits limit nothing.
type Limits struct {
	PerSecond      float64 `json:"per_second,omitempty"`       // datagrams/s per source network
	Burst          int     `json:"burst,omitempty"`            // 0: PerSecond
	BytesPerSecond float64 `json:"bytes_per_second,omitempty"` // request bytes/s per source network
	BytesBurst     int     `json:"bytes_burst,omitempty"`      // 0: max(65535, BytesPerSecond)
	LimitLoopback  bool    `json:"limit_loopback,omitempty"`   // loopback sources are exempt unless set
	MaxReplyRatio  float64 `json:"max_reply_ratio,omitempty"`  // 0: off; else at least 1
}

// Validate reports the first field out of range.
func (l Limits) Validate() error {
	bad := func(field string, v float64, why string) error {
		return &FieldError{Field: "limits." + field, Value: strconv.FormatFloat(v, 'g', -1, 64), Reason: why, Err: ErrInvalidArgument}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"per_second", l.PerSecond}, {"bytes_per_second", l.BytesPerSecond}, {"max_reply_ratio", l.MaxReplyRatio}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 || f.v > 1e12 {
			return bad(f.name, f.v, "must be a number from 0 to 1e12")
		}
	}
	if l.Burst < 0 || l.Burst > 1<<30 {
		return bad("burst", float64(l.Burst), "must be from 0 to 2^30")
	}
	if l.BytesBurst < 0 || l.BytesBurst > 1<<30 {
		return bad("bytes_burst", float64(l.BytesBurst), "must be from 0 to 2^30")
	}
	if l.MaxReplyRatio != 0 && l.MaxReplyRatio < 1 {
		return bad("max_reply_ratio", l.MaxReplyRatio, "must be 0 (off) or at least 1 (a reply as long as its request)")
	}
	return nil
}

func (l Limits) policy(loops *listener.LoopGuard) listener.Policy {
	return listener.Policy{
		Loops: loops,
		RateLimit: ratelimit.Config{
			PerSecond: l.PerSecond, Burst: l.Burst,
			BytesPerSecond: l.BytesPerSecond, BytesBurst: l.BytesBurst,
		},
		LimitLoopback: l.LimitLoopback,
		MaxReplyRatio: l.MaxReplyRatio,
	}
}
