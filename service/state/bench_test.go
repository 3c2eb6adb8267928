package state_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/state"
)

// BenchmarkSave measures one save of n listeners: encoding, writing,
// two fsyncs (the file's and its directory's) and the rename.
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		specs := make([]manager.Spec, n)
		for i := range specs {
			specs[i] = manager.Spec{ID: fmt.Sprintf("l%05d", i), Address: "127.0.0.1:0"}
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			f := &state.File{Path: filepath.Join(b.TempDir(), "state.json")}
			for b.Loop() {
				if err := f.Save(specs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFsync measures the floor of a durable save on this disk: an
// fsync of a small new file and one of its directory.
func BenchmarkFsync(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		f, err := os.CreateTemp(dir, "sync")
		if err != nil {
			b.Fatal(err)
		}
		f.Write([]byte("{}\n"))
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(f.Name())
		d, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		d.Sync()
		d.Close()
	}
}
