package manager

import (
	"strconv"
	"testing"
)

// TestRequestIDsBounded fills the cache past its size and checks that it
// keeps exactly the newest ids, forgetting the oldest first.
func TestRequestIDsBounded(t *testing.T) {
	const n = 4
	r := newRequestIDs(n)
	for i := range 3 * n {
		r.put("req-"+strconv.Itoa(i), "l-"+strconv.Itoa(i))
		if got, want := r.len(), min(i+1, n); got != want {
			t.Fatalf("after %d puts: got %d ids, want %d", i+1, got, want)
		}
	}
	for i := range 3 * n {
		id, ok := r.get("req-" + strconv.Itoa(i))
		if want := i >= 2*n; ok != want || (ok && id != "l-"+strconv.Itoa(i)) {
			t.Errorf("get(req-%d): got %q, %v, want remembered=%v", i, id, ok, want)
		}
	}
	// A request id seen again keeps one slot.
	r.put("req-11", "other")
	if id, _ := r.get("req-11"); id != "other" || r.len() != n {
		t.Errorf("reused request id: got %q and %d ids, want other and %d", id, r.len(), n)
	}
	if _, ok := r.get(""); ok {
		t.Error(`get(""): remembered, want not`)
	}
	r.put("", "x")
	if r.len() != n {
		t.Errorf(`put(""): got %d ids, want %d`, r.len(), n)
	}
}
