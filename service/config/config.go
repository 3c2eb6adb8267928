// Package config is udpd's declarative configuration file: the listeners
// that should run, each with its id, address, workers and limits. It is
// written in YAML; JSON, being YAML, is accepted too.
//
//	listeners:
//	  - id: echo
//	    address: 127.0.0.1:12000
//	    workers: 2
//	    limits:
//	      per_second: 100
//	      burst: 200
//
// Parse and Format are pure: no files, no network, no knowledge of the
// daemon. Parse checks the file's shape (known fields only, every listener
// with an id and an address, no id twice, finite numbers); whether an
// address can be bound or a limit is in range is the daemon's to say when
// the configuration is applied. Format prints a File canonically, so
// that Parse(Format(f)) equals f and `udpctl config get -o yaml` prints
// exactly what a file holds. config never imports gRPC, protobuf or the
// daemon's packages.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"go.yaml.in/yaml/v3"
)

// File is a whole configuration.
type File struct {
	// ConfigVersion, when set, is the daemon's configuration version the
	// file was read from (`udpctl config get` fills it in): applying the
	// file then fails if the daemon changed since, instead of undoing that
	// change. Hand-written files leave it out. udpd --config ignores it.
	ConfigVersion string `yaml:"config_version,omitempty" json:"config_version,omitempty"`
	// Listeners are the listeners that should run, in any order.
	Listeners []Listener `yaml:"listeners" json:"listeners"`
}

// Listener is one listener of a File.
type Listener struct {
	ID      string  `yaml:"id" json:"id"`
	Address string  `yaml:"address" json:"address"`
	Workers int     `yaml:"workers,omitempty" json:"workers,omitempty"` // 0: the daemon's default
	Limits  *Limits `yaml:"limits,omitempty" json:"limits,omitempty"`   // nil: the daemon's defaults
}

// Limits are a listener's own limits; a field left out is 0 (off).
type Limits struct {
	PerSecond      float64 `yaml:"per_second,omitempty" json:"per_second,omitempty"`
	Burst          int     `yaml:"burst,omitempty" json:"burst,omitempty"`
	BytesPerSecond float64 `yaml:"bytes_per_second,omitempty" json:"bytes_per_second,omitempty"`
	BytesBurst     int     `yaml:"bytes_burst,omitempty" json:"bytes_burst,omitempty"`
	LimitLoopback  bool    `yaml:"limit_loopback,omitempty" json:"limit_loopback,omitempty"`
	MaxReplyRatio  float64 `yaml:"max_reply_ratio,omitempty" json:"max_reply_ratio,omitempty"`
}

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid configuration")

// Parse reads a configuration in YAML or JSON. A file must have a
// listeners key, even if empty (`listeners: []`): an empty file is more
// likely a write caught half way than a wish to stop every listener.
func Parse(data []byte) (File, error) {
	var f struct { // File, telling a missing listeners key from an empty list
		ConfigVersion string      `yaml:"config_version"`
		Listeners     *[]Listener `yaml:"listeners"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return File{}, fmt.Errorf("parse: %w: the file is empty (want a listeners: list; listeners: [] for none)", ErrInvalid)
		}
		return File{}, fmt.Errorf("parse: %w: %w", ErrInvalid, unwrapYAML(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return File{}, fmt.Errorf("parse: %w: more than one YAML document", ErrInvalid)
	}
	if f.Listeners == nil {
		return File{}, fmt.Errorf("parse: %w: no listeners: list (listeners: [] for none)", ErrInvalid)
	}
	out := File{ConfigVersion: f.ConfigVersion, Listeners: *f.Listeners}
	if out.Listeners == nil {
		out.Listeners = []Listener{}
	}
	if err := check(out); err != nil {
		return File{}, fmt.Errorf("parse: %w: %w", ErrInvalid, err)
	}
	return out, nil
}

// check enforces the shape Parse promises.
func check(f File) error {
	seen := make(map[string]int, len(f.Listeners))
	for i, l := range f.Listeners {
		name := fmt.Sprintf("listeners[%d]", i)
		if l.ID == "" {
			return fmt.Errorf("%s: id is required", name)
		}
		name = fmt.Sprintf("listener %q", l.ID)
		if j, dup := seen[l.ID]; dup {
			return fmt.Errorf("%s: id is listed twice (listeners[%d] and listeners[%d])", name, j, i)
		}
		seen[l.ID] = i
		if l.Address == "" {
			return fmt.Errorf("%s: address is required", name)
		}
		if l.Limits != nil {
			for field, v := range map[string]float64{"per_second": l.Limits.PerSecond, "bytes_per_second": l.Limits.BytesPerSecond, "max_reply_ratio": l.Limits.MaxReplyRatio} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("%s: limits.%s must be a finite number", name, field)
				}
			}
		}
	}
	return nil
}

// unwrapYAML drops the "yaml: " prefix of the library's errors: the
// caller's prefix says what was parsed.
func unwrapYAML(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(joinLines(te.Errors))
	}
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "yaml: " {
		msg = msg[6:]
	}
	return errors.New(msg)
}

func joinLines(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// Format prints f as YAML, the way Parse reads it back: two-space
// indents, fields in a fixed order, zero values left out.
func Format(f File) []byte {
	if f.Listeners == nil {
		f.Listeners = []Listener{}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		panic(fmt.Sprintf("format: %v", err)) // plain structs: cannot fail
	}
	enc.Close()
	return b.Bytes()
}

// FormatJSON prints f as indented JSON with the same field names; Parse
// reads it back.
func FormatJSON(f File) []byte {
	if f.Listeners == nil {
		f.Listeners = []Listener{}
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("format: %v", err)) // finite numbers only: cannot fail
	}
	return append(b, '\n')
}
