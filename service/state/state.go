// Package state keeps the daemon's listener configuration in a file, so a
// restarted daemon (udpd --resume) serves what it served before a crash.
//
// A File implements manager.Store. Saves are atomic and durable: the new
// content goes to a temporary file in the same directory, which is synced,
// renamed over the old file, and the directory synced, so after a crash the
// file holds the old list or the new one, never a mix. The file is created
// with mode 0600. state never imports gRPC or protobuf.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/udpd/udpd/service/manager"
)

// version is the file format's version; Load refuses others.
const version = 1

// ErrCorrupt is returned (wrapped, with the file's name) by Load when the
// file exists but cannot be understood.
var ErrCorrupt = errors.New("state file is corrupt")

type document struct {
	Version   int            `json:"version"`
	Listeners []manager.Spec `json:"listeners"`
}

// File is a state file.
type File struct {
	Path string
}

var _ manager.Store = (*File)(nil)

// Load reads the saved listeners. A missing file is fs.ErrNotExist
// (wrapped); an unreadable or corrupt one is an error naming the file.
func (f *File) Load() ([]manager.Spec, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var doc document
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("load state %s: %w: %v", f.Path, ErrCorrupt, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("load state %s: %w: data after the document", f.Path, ErrCorrupt)
	}
	if doc.Version != version {
		return nil, fmt.Errorf("load state %s: %w: version %d, want %d", f.Path, ErrCorrupt, doc.Version, version)
	}
	seen := make(map[string]bool, len(doc.Listeners))
	for i, s := range doc.Listeners {
		if err := manager.ValidateID(s.ID); err != nil {
			return nil, fmt.Errorf("load state %s: %w: listener %d: %v", f.Path, ErrCorrupt, i, err)
		}
		if _, err := manager.ParseAddress(s.Address); err != nil {
			return nil, fmt.Errorf("load state %s: %w: listener %q: %v", f.Path, ErrCorrupt, s.ID, err)
		}
		if s.Workers < 0 || s.Workers > 1024 {
			return nil, fmt.Errorf("load state %s: %w: listener %q: workers %d is not from 0 to 1024", f.Path, ErrCorrupt, s.ID, s.Workers)
		}
		if seen[s.ID] {
			return nil, fmt.Errorf("load state %s: %w: listener %q appears twice", f.Path, ErrCorrupt, s.ID)
		}
		seen[s.ID] = true
	}
	return doc.Listeners, nil
}

// Exists reports whether the file is there.
func (f *File) Exists() bool {
	_, err := os.Stat(f.Path)
	return !errors.Is(err, fs.ErrNotExist)
}

// Save replaces the file's content with specs, atomically and durably.
func (f *File) Save(specs []manager.Spec) error {
	if specs == nil {
		specs = []manager.Spec{}
	}
	b, err := json.MarshalIndent(document{Version: version, Listeners: specs}, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: sync %s: %w", dir, err)
	}
	return nil
}
