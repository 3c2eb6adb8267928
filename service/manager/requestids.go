package manager

// requestIDs remembers which listener each of the last n request ids
// started, so that a retried Start returns what the first one did. It is
// bounded: the oldest id is forgotten first. It is not safe for concurrent
// use; the Manager guards it with its locks.
type requestIDs struct {
	ids   map[string]string // request id → listener id
	order []string          // ring of the ids in ids, oldest at next once full
	next  int
}

func newRequestIDs(n int) *requestIDs {
	return &requestIDs{ids: make(map[string]string, n), order: make([]string, 0, n)}
}

// get returns the listener id request started, if it is remembered.
func (r *requestIDs) get(request string) (string, bool) {
	if request == "" {
		return "", false
	}
	id, ok := r.ids[request]
	return id, ok
}

// put remembers that request started listener id. An empty request is
// not remembered.
func (r *requestIDs) put(request, id string) {
	if request == "" {
		return
	}
	if _, seen := r.ids[request]; seen {
		r.ids[request] = id // reused after its listener went: keep one entry
		return
	}
	if len(r.order) < cap(r.order) {
		r.order = append(r.order, request)
	} else {
		delete(r.ids, r.order[r.next])
		r.order[r.next] = request
		r.next = (r.next + 1) % len(r.order)
	}
	r.ids[request] = id
}

// len returns how many request ids are remembered.
func (r *requestIDs) len() int { return len(r.ids) }
