package manager

// requestIDs remembers which listener each of the last request ids
// started, so that a retried Start returns what the first one did. It is
// bounded in entries and in bytes: the oldest ids are forgotten first. It
// is not safe for concurrent use; the Manager guards it with its locks.
type requestIDs struct {
	maxN, maxBytes int
	ids            map[string]string // request id → listener id
	order          []string          // the ids in ids, oldest at head
	head           int
	bytes          int // sum of cost over ids
}

// entryOverhead approximates what an entry costs beyond its two strings:
// the map slot, the string headers and the slot in order.
const entryOverhead = 64

// cost is what remembering that request started listener id costs.
func cost(request, id string) int { return len(request) + len(id) + entryOverhead }

func newRequestIDs(maxN, maxBytes int) *requestIDs {
	return &requestIDs{maxN: maxN, maxBytes: maxBytes, ids: make(map[string]string)}
}

// get returns the listener id request started, if it is remembered.
func (r *requestIDs) get(request string) (string, bool) {
	if request == "" {
		return "", false
	}
	id, ok := r.ids[request]
	return id, ok
}

// put remembers that request started listener id, then forgets the
// oldest ids until both bounds hold. An empty request is not remembered.
func (r *requestIDs) put(request, id string) {
	if request == "" {
		return
	}
	if old, seen := r.ids[request]; seen {
		r.ids[request] = id // reused after its listener went: keep one entry
		r.bytes += len(id) - len(old)
	} else {
		r.ids[request] = id
		r.order = append(r.order, request)
		r.bytes += cost(request, id)
	}
	for len(r.ids) > r.maxN || r.bytes > r.maxBytes {
		oldest := r.order[r.head]
		r.order[r.head] = ""
		r.head++
		r.bytes -= cost(oldest, r.ids[oldest])
		delete(r.ids, oldest)
	}
	// Drop the forgotten head once it is half of order, so order stays
	// within twice the entries at an amortised constant cost per put.
	if r.head > 0 && r.head >= len(r.order)/2 {
		r.order = append(r.order[:0:0], r.order[r.head:]...)
		r.head = 0
	}
}

// len returns how many request ids are remembered.
func (r *requestIDs) len() int { return len(r.ids) }
