package manager

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestRequestIDsBounded fills the cache past its size and checks that it
// keeps exactly the newest ids, forgetting the oldest first.
func TestRequestIDsBounded(t *testing.T) {
	const n = 4
	r := newRequestIDs(n, 1<<30)
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

// TestRequestIDsBoundedInBytes fills the cache with long ids and checks
// that its bytes stay within the bound, that it keeps the newest ids that
// fit, and that the bytes it counts are the bytes it holds.
func TestRequestIDsBoundedInBytes(t *testing.T) {
	const maxBytes = 10_000
	r := newRequestIDs(1000, maxBytes)
	long := strings.Repeat("x", MaxRequestIDLen-4)
	per := cost(long+"0000", "l-0000")
	for i := range 500 {
		r.put(fmt.Sprintf("%s%04d", long, i), fmt.Sprintf("l-%04d", i))
		if r.bytes > maxBytes {
			t.Fatalf("after %d puts: %d bytes, want at most %d", i+1, r.bytes, maxBytes)
		}
		held := 0
		for req, id := range r.ids {
			held += cost(req, id)
		}
		if held != r.bytes {
			t.Fatalf("after %d puts: counted %d bytes, holds %d", i+1, r.bytes, held)
		}
		if len(r.order)-r.head != len(r.ids) || len(r.order) > 2*len(r.ids)+1 {
			t.Fatalf("after %d puts: order holds %d (head %d) for %d ids", i+1, len(r.order), r.head, len(r.ids))
		}
	}
	if got, want := r.len(), maxBytes/per; got != want {
		t.Errorf("ids kept: got %d, want %d (%d bytes each)", got, want, per)
	}
	for i := range 500 {
		_, ok := r.get(fmt.Sprintf("%s%04d", long, i))
		if want := i >= 500-maxBytes/per; ok != want {
			t.Errorf("get(id %d): remembered %v, want %v", i, ok, want)
		}
	}
}

// TestManagerRequestIDsBounded checks the bounds of a Manager's table
// (the mutation "unbounded request-id table" fails it): however many
// request ids of the longest kind it is given, it holds at most
// maxRequestIDs of them and maxRequestIDBytes, 512 KiB.
func TestManagerRequestIDsBounded(t *testing.T) {
	m := New(Options{})
	long := strings.Repeat("r", MaxRequestIDLen-6)
	id := strings.Repeat("l", 63)
	for i := range 3 * maxRequestIDs {
		req := fmt.Sprintf("%s%06d", long, i)
		if err := ValidateRequestID(req); err != nil {
			t.Fatal(err)
		}
		m.requests.put(req, id)
	}
	if n := m.requests.len(); n > maxRequestIDs || n == 0 {
		t.Errorf("request ids held: got %d, want 1 to %d", n, maxRequestIDs)
	}
	if b := m.requests.bytes; b > maxRequestIDBytes || maxRequestIDBytes > 1<<20 {
		t.Errorf("request id bytes: got %d (bound %d), want within a bound of at most 1 MiB", b, maxRequestIDBytes)
	}
	if _, ok := m.requests.get(fmt.Sprintf("%s%06d", long, 3*maxRequestIDs-1)); !ok {
		t.Error("the newest request id: forgotten, want remembered")
	}
}
