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
	"syscall"

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
	seenID := make(map[string]bool, len(doc.Listeners))
	seenAddr := make(map[string]string, len(doc.Listeners))
	for i, s := range doc.Listeners {
		if s.ID == "" {
			return nil, fmt.Errorf("load state %s: %w: listener %d has no id", f.Path, ErrCorrupt, i)
		}
		addr, err := manager.ValidateSpec(s)
		if err != nil {
			return nil, fmt.Errorf("load state %s: %w: listener %q: %v", f.Path, ErrCorrupt, s.ID, err)
		}
		if seenID[s.ID] {
			return nil, fmt.Errorf("load state %s: %w: listener %q appears twice", f.Path, ErrCorrupt, s.ID)
		}
		seenID[s.ID] = true
		if other, dup := seenAddr[addr.String()]; dup && addr.Port() != 0 {
			return nil, fmt.Errorf("load state %s: %w: listeners %q and %q share %s", f.Path, ErrCorrupt, other, s.ID, addr)
		}
		seenAddr[addr.String()] = s.ID
	}
	return doc.Listeners, nil
}

// ErrLocked is returned (wrapped) by Lock when another process holds the
// file's lock.
var ErrLocked = errors.New("state file is in use by another udpd")

// Lock takes an exclusive lock on the file (through PATH.lock, created
// 0600 beside it) for as long as the process holds the returned file, so
// two daemons never write one state file. Close the result to release it;
// a crashed process releases it with its descriptors.
func (f *File) Lock() (io.Closer, error) {
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	lf, err := os.OpenFile(f.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock state %s: %w", f.Path, ErrLocked)
		}
		return nil, fmt.Errorf("lock state %s: %w", f.Path, err)
	}
	return lf, nil
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
