// Package state keeps the daemon's listener configuration in a file, so a
// restarted daemon (udpd --resume) serves what it served before a crash.
//
// A File implements manager.Store. Saves are atomic and durable: the new
// content goes to a temporary file in the same directory, which is synced,
// renamed over the old file, and the directory synced, so after a crash the
// file holds the old list or the new one, never a mix. The file is created
// with mode 0600. Open resolves symbolic links once, so the lock and the
// saves act on the real file; Lock removes the temporary files a killed
// daemon left. state never imports gRPC or protobuf.
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
	"strings"
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
	// Path is where the file is. Open resolves symbolic links in it, so
	// that saves replace the file a link points to, not the link.
	Path string
}

// maxLinks bounds how many symbolic links Open follows, as the kernel does.
const maxLinks = 40

// Open returns the state file at path, with path made absolute and its
// symbolic links resolved once, here: the lock and every save then act on
// the real file, so two daemons that reach one file through two links
// share one lock, and a save never replaces a link with a plain file. A
// link to a file that does not exist yet resolves to where that file will
// be; missing directories are created (mode 0700). A path that exists and
// is not a regular file is an error.
func Open(path string) (*File, error) {
	p, err := resolve(path)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &File{Path: p}, nil
}

func resolve(path string) (string, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for range maxLinks {
		dir := filepath.Dir(p)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
		if dir, err = filepath.EvalSymlinks(dir); err != nil {
			return "", err
		}
		p = filepath.Join(dir, filepath.Base(p))
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return p, nil
		case err != nil:
			return "", err
		case fi.Mode().IsRegular():
			return p, nil
		case fi.Mode()&fs.ModeSymlink == 0:
			return "", fmt.Errorf("%s is not a regular file", p)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = target
	}
	return "", fmt.Errorf("more than %d symbolic links", maxLinks)
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
//
// Holding the lock, it removes the temporary files that saves of this
// file left behind when their process was killed (.NAME.tmp-DIGITS):
// no save of this file can be running, so every one of them is stale.
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
	if err := f.removeTemps(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock state %s: %w", f.Path, err)
	}
	return lf, nil
}

// tempPrefix starts the names of Save's temporary files; os.CreateTemp
// puts decimal digits after it.
func (f *File) tempPrefix() string { return "." + filepath.Base(f.Path) + ".tmp-" }

// removeTemps removes the temporary files of f's saves. Called with the
// lock held.
func (f *File) removeTemps() error {
	dir := filepath.Dir(f.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove stale temporary files: %w", err)
	}
	prefix := f.tempPrefix()
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale temporary files: %w", err)
		}
	}
	return nil
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
	tmp, err := os.CreateTemp(dir, f.tempPrefix()+"*")
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
