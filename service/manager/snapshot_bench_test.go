//go:build linux

package manager_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/udpd/udpd/service/manager"
)

// BenchmarkQuickSnapshot is what the stats sampler pays per tick with
// 1,000 listeners of one worker each.
func BenchmarkQuickSnapshot(b *testing.B) {
	const n = 1000
	needFiles(b, 2*n+200)
	m := manager.New(manager.Options{MaxListeners: n, Workers: 1})
	b.Cleanup(func() { shutdownBench(b, m) })
	for i := range n {
		if _, err := m.Start(context.Background(), manager.Spec{ID: fmt.Sprintf("l%04d", i), Address: "127.0.0.1:0"}, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if s := m.QuickSnapshot(); len(s.Listeners) != n {
			b.Fatalf("%d listeners", len(s.Listeners))
		}
	}
}
