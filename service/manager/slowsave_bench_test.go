package manager_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/udpd/udpd/service/manager"
)

// slowStore is a disk whose every save takes 5 ms.
type slowStore struct{}

func (slowStore) Save([]manager.Spec) error { time.Sleep(5 * time.Millisecond); return nil }

// BenchmarkStatsDuringSlowSaves: Stats while another goroutine keeps
// starting and stopping a listener against a store whose saves take 5 ms.
func BenchmarkStatsDuringSlowSaves(b *testing.B) {
	m := manager.New(manager.Options{Store: slowStore{}, Workers: 1})
	defer m.Shutdown(context.Background())
	for _, id := range []string{"a", "b", "c"} {
		if _, err := m.Start(context.Background(), manager.Spec{ID: id, Address: "127.0.0.1:0"}, ""); err != nil {
			b.Fatal(err)
		}
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			m.Start(context.Background(), manager.Spec{ID: "churn", Address: "127.0.0.1:0"}, "")
			m.Stop(context.Background(), "churn", time.Millisecond)
		}
	}()
	var worst time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := m.Stats(""); err != nil {
			b.Fatal(err)
		}
		worst = max(worst, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
	stop.Store(true)
	<-done
}
