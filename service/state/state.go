// Package state keeps the daemon's listener configuration in a file, so a
// restarted daemon (udpd --resume) serves what it served before a crash.
//
// A File implements manager.Store. Saves are atomic and durable: the new
// content goes to a temporary file in the same directory, which is synced,
// renamed over the old file, and the directory synced, so after a crash the
// file holds the old list or the new one, never a mix. The file is created
// with mode 0600. Open resolves symbolic links once, so the lock and the
// saves act on the real file; Lock removes the temporary files a killed
// daemon left. Its errors name the operation and the file ("save state:
// …", "load state: …") and wrap ErrCorrupt, ErrLocked or the system
// call's error for errors.Is, as package manager's rule says. state never
// imports gRPC or protobuf.
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
	"strconv"
	"strings"
	"sync"

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

	mu    sync.Mutex
	cache []encoded // the last save's listeners, encoded, in its order
	size  int       // bytes of the last save
}

// encoded is one listener's JSON and the spec it encodes.
type encoded struct {
	spec   manager.Spec
	limits manager.Limits // *spec.Limits: the caller may change what it points to
	json   []byte
}

func (e encoded) is(s manager.Spec) bool {
	return e.spec.ID == s.ID && e.spec.Address == s.Address && e.spec.Workers == s.Workers &&
		(e.spec.Limits == nil) == (s.Limits == nil) && (s.Limits == nil || e.limits == *s.Limits)
}

// encode returns the document for specs, byte for byte what
// json.MarshalIndent(document, "", "  ") makes, plus a newline. A listener saved unchanged by the last save is not encoded
// again (the manager saves in id order, so a merge walk finds it without
// hashing), and a save of n listeners after one change encodes one: the
// cost of a change is copying bytes, not encoding every listener. At
// 10,000 listeners json.MarshalIndent of the whole document took 47 ms.
func (f *File) encode(specs []manager.Spec) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cache := make([]encoded, 0, len(specs))
	b := make([]byte, 0, f.size+256)
	b = append(b, "{\n  \"version\": "...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, ",\n  \"listeners\": ["...)
	prev := f.cache
	for i, s := range specs {
		for len(prev) > 0 && prev[0].spec.ID < s.ID {
			prev = prev[1:]
		}
		var e encoded
		if len(prev) > 0 && prev[0].is(s) {
			e = prev[0]
		} else {
			j, err := json.MarshalIndent(s, "    ", "  ")
			if err != nil {
				return nil, fmt.Errorf("listener %q: %w", s.ID, err)
			}
			e = encoded{spec: s, json: j}
			if s.Limits != nil {
				e.limits = *s.Limits
			}
		}
		cache = append(cache, e)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "\n    "...)
		b = append(b, e.json...)
	}
	if len(specs) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, "]\n}\n"...)
	f.cache, f.size = cache, len(b)
	return b, nil
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
	if err := tryLock(lf); err != nil { // ErrLocked if another process holds it
		lf.Close()
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
	b, err := f.encode(specs)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
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
	if err := datasync(tmp); err != nil {
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
