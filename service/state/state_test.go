package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/state"
)

// newFile returns a state file in a fresh directory.
func newFile(t *testing.T) *state.File {
	t.Helper()
	return &state.File{Path: filepath.Join(t.TempDir(), "state.json")}
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

func TestSaveLoadRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		specs []manager.Spec
	}{
		{"nil", nil},
		{"empty", []manager.Spec{}},
		{"one", []manager.Spec{{ID: "udp-12000", Address: "127.0.0.1:12000"}}},
		{"several", []manager.Spec{
			{ID: "a", Address: "127.0.0.1:0"},
			{ID: "b", Address: "[::1]:12001", Workers: 4},
			{ID: "c", Address: "localhost:53"},
			{ID: "d", Address: "0.0.0.0:65535", Workers: 1024},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFile(t)
			if f.Exists() {
				t.Fatalf("Exists before Save: got true, want false")
			}
			if err := f.Save(tc.specs); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if !f.Exists() {
				t.Errorf("Exists after Save: got false, want true")
			}
			got, err := f.Load()
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tc.specs, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Load after Save (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSaveReplaces(t *testing.T) {
	f := newFile(t)
	first := []manager.Spec{{ID: "a", Address: "127.0.0.1:1"}, {ID: "b", Address: "127.0.0.1:2"}}
	second := []manager.Spec{{ID: "c", Address: "[::1]:3", Workers: 2}}
	for _, specs := range [][]manager.Spec{first, second} {
		if err := f.Save(specs); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(second, got); diff != "" {
		t.Errorf("Load after two saves (-want +got):\n%s", diff)
	}
}

// TestSaveIsAtomic checks that Save replaces the file by a rename and never
// rewrites it in place: whoever has the old file open (a reader, or the
// kernel's page cache at a crash) keeps the whole old document, while the
// path names the whole new one. Writing in place (truncate, write, sync)
// fails this at once, where only a kill -9 at the right moment shows it
// otherwise.
func TestSaveIsAtomic(t *testing.T) {
	f := newFile(t)
	if err := f.Save([]manager.Spec{{ID: "old", Address: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	oldBytes, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldInfo, err := old.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save([]manager.Spec{{ID: "new", Address: "127.0.0.1:2", Workers: 3}}); err != nil {
		t.Fatal(err)
	}
	newInfo, err := os.Stat(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(oldInfo, newInfo) {
		t.Error("Save wrote into the old file instead of renaming a new one over it")
	}
	kept := make([]byte, len(oldBytes)+64)
	n, _ := old.ReadAt(kept, 0)
	if got := string(kept[:n]); got != string(oldBytes) {
		t.Errorf("the old file, still open, changed under its reader:\ngot  %q\nwant %q", got, oldBytes)
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "new" {
		t.Errorf("Load after the save: got %v, want the new listener", got)
	}
}

// TestFormat pins the file format that a restarted (maybe newer) daemon
// reads: a versioned JSON document, workers left out when 0.
func TestFormat(t *testing.T) {
	f := newFile(t)
	if err := f.Save([]manager.Spec{{ID: "a", Address: "127.0.0.1:0"}, {ID: "b", Address: "[::1]:7", Workers: 3}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("saved file is not JSON: %v\n%s", err, b)
	}
	want := map[string]any{
		"version": 1.0,
		"listeners": []any{
			map[string]any{"id": "a", "address": "127.0.0.1:0"},
			map[string]any{"id": "b", "address": "[::1]:7", "workers": 3.0},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("saved document (-want +got):\n%s", diff)
	}
	if !strings.HasSuffix(string(b), "}\n") {
		t.Errorf("saved file: got %q at the end, want a final newline", b[max(0, len(b)-5):])
	}
}

func TestSaveFileMode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing fs.FileMode // 0: no file before Save
	}{
		{"new file", 0},
		{"replaces a 0644 file", 0o644},
		{"replaces a 0666 file", 0o666},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFile(t)
			if tc.existing != 0 {
				if err := os.WriteFile(f.Path, []byte("{}"), tc.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.Path, tc.existing); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			if err := f.Save([]manager.Spec{{ID: "a", Address: "127.0.0.1:0"}}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(f.Path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode(); got != 0o600 {
				t.Errorf("mode: got %v, want %v", got, fs.FileMode(0o600))
			}
		})
	}
}

func TestSaveCreatesDirectory(t *testing.T) {
	f := &state.File{Path: filepath.Join(t.TempDir(), "var", "lib", "udpd", "state.json")}
	if err := f.Save(nil); err != nil {
		t.Fatalf("Save into a missing directory: %v", err)
	}
	if _, err := f.Load(); err != nil {
		t.Errorf("Load: %v", err)
	}
}

func TestSaveLeavesNoTempFiles(t *testing.T) {
	f := newFile(t)
	for i := range 5 {
		if err := f.Save([]manager.Spec{{ID: "a", Address: "127.0.0.1:" + string(rune('0'+i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := dirNames(t, filepath.Dir(f.Path)), []string{"state.json"}; !cmp.Equal(got, want) {
		t.Errorf("directory after saves: got %v, want %v", got, want)
	}

	// A save that fails at the rename (the path is a non-empty directory)
	// removes its temporary file too.
	dir := t.TempDir()
	blocked := &state.File{Path: filepath.Join(dir, "state.json")}
	if err := os.MkdirAll(filepath.Join(blocked.Path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := blocked.Save(nil); err == nil {
		t.Fatalf("Save over a directory: got nil, want an error")
	}
	if got, want := dirNames(t, dir), []string{"state.json"}; !cmp.Equal(got, want) {
		t.Errorf("directory after a failed save: got %v, want %v", got, want)
	}
}

func TestSaveFails(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		needUser bool // root writes into read-only directories
	}{
		{"under a regular file", filepath.Join(regular, "x", "state.json"), false},
		{"directory is a regular file", filepath.Join(regular, "state.json"), false},
		{"read-only directory", filepath.Join(readOnly, "state.json"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needUser && os.Geteuid() == 0 {
				t.Skip("running as root: permissions are not enforced")
			}
			f := &state.File{Path: tc.path}
			err := f.Save([]manager.Spec{{ID: "a", Address: "127.0.0.1:0"}})
			if err == nil {
				t.Fatalf("Save(%s): got nil, want an error", tc.path)
			}
			if !strings.Contains(err.Error(), "save state") {
				t.Errorf("Save error: got %q, want it to say %q", err, "save state")
			}
		})
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "not a directory" {
		t.Errorf("the regular file: got %q, %v, want it untouched", b, err)
	}
}

func TestLoadMissing(t *testing.T) {
	f := newFile(t)
	specs, err := f.Load()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: got %v, %v, want %v", specs, err, fs.ErrNotExist)
	}
	if errors.Is(err, state.ErrCorrupt) {
		t.Errorf("Load of a missing file: got %v, want it not to be %v", err, state.ErrCorrupt)
	}
	if f.Exists() {
		t.Errorf("Exists: got true, want false")
	}
}

func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		content string
	}{
		{"empty file", ""},
		{"not json", "listeners: a"},
		{"truncated", `{"version": 1, "listeners": [{"id": "a", "addr`},
		{"trailing data", `{"version": 1, "listeners": []} {"version": 1, "listeners": [{"id": "a", "address": "127.0.0.1:0"}]}`},
		{"wrong version", `{"version": 2, "listeners": []}`},
		{"no version", `{"listeners": []}`},
		{"unknown field", `{"version": 1, "listeners": [], "extra": true}`},
		{"unknown listener field", `{"version": 1, "listeners": [{"id": "a", "address": "127.0.0.1:0", "port": 1}]}`},
		{"listeners not a list", `{"version": 1, "listeners": {"id": "a"}}`},
		{"duplicate ids", `{"version": 1, "listeners": [{"id": "a", "address": "127.0.0.1:1"}, {"id": "a", "address": "127.0.0.1:2"}]}`},
		{"bad address", `{"version": 1, "listeners": [{"id": "a", "address": "foo:1"}]}`},
		{"port out of range", `{"version": 1, "listeners": [{"id": "a", "address": "127.0.0.1:70000"}]}`},
		{"missing address", `{"version": 1, "listeners": [{"id": "a"}]}`},
		{"bad id", `{"version": 1, "listeners": [{"id": "A B", "address": "127.0.0.1:1"}]}`},
		{"missing id", `{"version": 1, "listeners": [{"address": "127.0.0.1:1"}]}`},
		{"bad limits", `{"version": 1, "listeners": [{"id": "a", "address": "127.0.0.1:1", "limits": {"per_second": -1}}]}`},
		{"two on one address", `{"version": 1, "listeners": [{"id": "a", "address": "127.0.0.1:9"}, {"id": "b", "address": "127.0.0.1:9"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFile(t)
			if err := os.WriteFile(f.Path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			specs, err := f.Load()
			if !errors.Is(err, state.ErrCorrupt) {
				t.Fatalf("Load(%q): got %v, %v, want %v", tc.content, specs, err, state.ErrCorrupt)
			}
			if !strings.Contains(err.Error(), f.Path) {
				t.Errorf("Load error: got %q, want it to name %s", err, f.Path)
			}
		})
	}
}

// TestManagerStore checks that a File is a manager.Store: the manager saves
// every change to it, and a new manager can start what it holds again.
func TestManagerStore(t *testing.T) {
	f := newFile(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m := manager.New(manager.Options{Store: f, Workers: 1})
	for _, spec := range []manager.Spec{{ID: "b", Address: "127.0.0.1:0"}, {ID: "a", Address: "localhost:0", Workers: 2}} {
		if _, err := m.Start(ctx, spec, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Stop(ctx, "b", 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := []manager.Spec{{ID: "a", Address: "localhost:0", Workers: 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("saved by the manager (-want +got):\n%s", diff)
	}

	resumed := manager.New(manager.Options{Store: f, Workers: 1})
	defer resumed.Shutdown(ctx)
	for _, spec := range got {
		if _, err := resumed.Start(ctx, spec, ""); err != nil {
			t.Fatalf("resume %+v: %v", spec, err)
		}
	}
	if diff := cmp.Diff(want, resumed.Specs()); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
}

func TestLockIsExclusive(t *testing.T) {
	f := newFile(t)
	first, err := f.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&state.File{Path: f.Path}).Lock(); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second Lock: got %v, want ErrLocked", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := f.Lock()
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	again.Close()
}

// TestOpenResolvesLinks checks that a state file reached through symbolic
// links is saved in place: the links stay links, the file they point to
// gets the content, and two links to one file share one lock.
func TestOpenResolvesLinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "state.json")
	if err := os.MkdirAll(filepath.Dir(real), 0o700); err != nil {
		t.Fatal(err)
	}
	// link1 is absolute; link2 is relative and goes through a linked
	// directory and through link1; missing points at a file not made yet.
	mustSymlink(t, real, filepath.Join(dir, "link1"))
	mustSymlink(t, "data", filepath.Join(dir, "datalink"))
	mustSymlink(t, "../link1", filepath.Join(dir, "data", "link2"))
	mustSymlink(t, "later.json", filepath.Join(dir, "data", "missing"))

	specs := []manager.Spec{{ID: "a", Address: "127.0.0.1:1"}}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "link1"), real},
		{filepath.Join(dir, "datalink", "link2"), real},
		{filepath.Join(dir, "data", "missing"), filepath.Join(dir, "data", "later.json")},
		{filepath.Join(dir, "new", "dir", "state.json"), filepath.Join(dir, "new", "dir", "state.json")},
	} {
		f, err := state.Open(tc.path)
		if err != nil {
			t.Fatalf("Open(%s): %v", tc.path, err)
		}
		if f.Path != tc.want {
			t.Errorf("Open(%s).Path: got %s, want %s", tc.path, f.Path, tc.want)
		}
		if err := f.Save(specs); err != nil {
			t.Fatalf("Save through %s: %v", tc.path, err)
		}
		if got, err := (&state.File{Path: tc.want}).Load(); err != nil || !cmp.Equal(got, specs) {
			t.Errorf("Load(%s) after a save through %s: got %v, %v, want %v", tc.want, tc.path, got, err, specs)
		}
	}
	for _, link := range []string{"link1", "datalink", "data/link2", "data/missing"} {
		if fi, err := os.Lstat(filepath.Join(dir, link)); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s after saves: got %v, %v, want a symbolic link still", link, fi.Mode(), err)
		}
	}

	f1, err := state.Open(filepath.Join(dir, "link1"))
	if err != nil {
		t.Fatal(err)
	}
	f2, err := state.Open(filepath.Join(dir, "datalink", "link2"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := f1.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := f2.Lock(); !errors.Is(err, state.ErrLocked) {
		t.Errorf("Lock through a second link: got %v, want %v", err, state.ErrLocked)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	mustSymlink(t, "loop2", filepath.Join(dir, "loop1"))
	mustSymlink(t, "loop1", filepath.Join(dir, "loop2"))
	for _, path := range []string{dir, filepath.Join(dir, "loop1")} {
		if f, err := state.Open(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s): got %+v, %v, want an error naming it", path, f, err)
		}
	}
}

// TestLockRemovesStaleTemps checks that taking the lock removes what a
// killed daemon's save left, and nothing else.
func TestLockRemovesStaleTemps(t *testing.T) {
	f := newFile(t)
	if err := f.Save([]manager.Spec{{ID: "a", Address: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(f.Path)
	stale := []string{".state.json.tmp-1", ".state.json.tmp-4294967295"}
	keep := []string{
		".other.json.tmp-1",      // another state file's
		".state.json.tmp-backup", // not made by Save
		".state.json.tmp-",
		"state.json",
		"state.json.lock",
	}
	for _, name := range append(slices.Clone(stale), keep[:len(keep)-2]...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := f.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	want := slices.Clone(keep)
	slices.Sort(want)
	if got := dirNames(t, dir); !cmp.Equal(got, want) {
		t.Errorf("directory after Lock: got %v, want %v", got, want)
	}
	if _, err := f.Load(); err != nil {
		t.Errorf("Load after Lock: %v", err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestSaveAfterChanges checks that each save writes what it was given,
// whatever changed since the last one (a save reuses the encoding of
// listeners that did not change).
func TestSaveAfterChanges(t *testing.T) {
	f := newFile(t)
	lim := &manager.Limits{PerSecond: 10}
	steps := [][]manager.Spec{
		{{ID: "a", Address: "127.0.0.1:1"}, {ID: "b", Address: "127.0.0.1:2"}, {ID: "c", Address: "127.0.0.1:3"}},
		{{ID: "a", Address: "127.0.0.1:1"}, {ID: "b", Address: "127.0.0.1:9"}, {ID: "c", Address: "127.0.0.1:3"}},
		{{ID: "a", Address: "127.0.0.1:1", Workers: 2}, {ID: "b", Address: "127.0.0.1:9"}, {ID: "c", Address: "127.0.0.1:3", Limits: lim}},
		{{ID: "a", Address: "127.0.0.1:1", Workers: 2}, {ID: "b", Address: "127.0.0.1:9"}, {ID: "c", Address: "127.0.0.1:3", Limits: lim}},
		{{ID: "a", Address: "127.0.0.1:1", Workers: 2}, {ID: "c", Address: "127.0.0.1:3"}},
		{{ID: "c", Address: "127.0.0.1:3"}, {ID: "b", Address: "127.0.0.1:5"}, {ID: "a", Address: "127.0.0.1:1", Workers: 2}},
		{{ID: "aa", Address: "127.0.0.1:6"}, {ID: "b", Address: "127.0.0.1:5"}, {ID: "c", Address: "127.0.0.1:3", Limits: lim}},
		{{ID: "aa", Address: "127.0.0.1:6"}, {ID: "b", Address: "127.0.0.1:5"}, {ID: "c", Address: "127.0.0.1:3", Limits: lim}},
		nil,
		{{ID: "a", Address: "127.0.0.1:1"}},
	}
	for i, specs := range steps {
		if i == 3 {
			lim.PerSecond = 20 // the same pointer, another value
		}
		want := make([]manager.Spec, len(specs))
		for j, s := range specs {
			want[j] = s
			if s.Limits != nil {
				l := *s.Limits
				want[j].Limits = &l
			}
		}
		if err := f.Save(specs); err != nil {
			t.Fatalf("step %d: Save: %v", i, err)
		}
		got, err := f.Load()
		if err != nil {
			t.Fatalf("step %d: Load: %v", i, err)
		}
		// The layout is json.MarshalIndent's, as it always was.
		doc := struct {
			Version   int            `json:"version"`
			Listeners []manager.Spec `json:"listeners"`
		}{1, specs}
		if doc.Listeners == nil {
			doc.Listeners = []manager.Spec{}
		}
		indented, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(f.Path); err != nil || string(b) != string(indented)+"\n" {
			t.Errorf("step %d: file:\n%s\nwant:\n%s", i, b, indented)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("step %d: Load after Save (-want +got):\n%s", i, diff)
		}
	}
}
