// Package status serves udpd's status page and the JSON it is drawn from:
// the daemon's version, uptime and health, a table of listeners with
// every counter and drop reason, and the per-second history of the last
// 15 minutes that the shared sampler keeps (no cost per viewer: viewers
// read what the sampler has already read).
//
// The page, its script and its style are embedded in the binary; it
// loads nothing from elsewhere and draws its charts as plain SVG. The
// handler is mounted on the metrics server and has its lockdown. status
// never imports gRPC or protobuf.
package status

import (
	"embed"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/sampler"
)

//go:embed static
var static embed.FS

// Options configure the handler.
type Options struct {
	Sampler *sampler.Sampler // with a History
	// Listeners describes the running listeners, ordered by id (a
	// Manager's Describe); the counters come from the Sampler.
	Listeners func() []manager.Listener
	Version   string
	Start     time.Time     // when the daemon started
	Health    func() string // "SERVING" or "NOT_SERVING"; nil: "SERVING"
}

// Handler serves GET / (the page), GET /static/… (its script and style)
// and GET /status.json (the data; ?seconds=N limits the history to the
// last N samples).
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		http.ServeFileFS(w, r, static, "static/index.html")
	})
	mux.HandleFunc("GET /static/{file}", func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		http.ServeFileFS(w, r, static, "static/"+r.PathValue("file"))
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		n := 0
		if v := r.URL.Query().Get("seconds"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 {
				http.Error(w, "seconds: want a positive number", http.StatusBadRequest)
				return
			}
		}
		headers(w)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.Encode(build(opts, n))
	})
	return mux
}

// headers lock the page to its own origin: no script, style, image or
// connection from anywhere else, no framing.
func headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// Doc is the document GET /status.json serves (documented in the
// README).
type Doc struct {
	Version       string     `json:"version"`
	StartTime     time.Time  `json:"startTime"`
	UptimeSeconds float64    `json:"uptimeSeconds"`
	Health        string     `json:"health"`
	Time          time.Time  `json:"time"` // of the latest reading
	Total         Counters   `json:"total"`
	Listeners     []Listener `json:"listeners"`
	History       History    `json:"history"`
}

// Listener is one row of the table.
type Listener struct {
	ID           string   `json:"id"`
	Address      string   `json:"address"`
	BoundAddress string   `json:"boundAddress"`
	Workers      int      `json:"workers"`
	State        string   `json:"state"`
	Generation   uint64   `json:"generation"`
	Counters     Counters `json:"counters"`
}

// Counters are a listener's counters, cumulative.
type Counters struct {
	DatagramsReceived uint64 `json:"datagramsReceived"`
	DatagramsSent     uint64 `json:"datagramsSent"`
	BytesReceived     uint64 `json:"bytesReceived"`
	BytesSent         uint64 `json:"bytesSent"`
	RepliesTooLarge   uint64 `json:"repliesTooLarge"`
	SendErrors        uint64 `json:"sendErrors"`
	LoopBlocked       uint64 `json:"loopBlocked"`
	RateLimited       uint64 `json:"rateLimited"`
	KernelDrops       uint64 `json:"kernelDrops"`
	ReadErrors        uint64 `json:"readErrors"`
}

// History is one sample per second, oldest first: datagrams per second
// over the second before each time.
type History struct {
	Times     []int64           `json:"times"` // Unix milliseconds
	Total     Series            `json:"total"`
	Listeners map[string]Series `json:"listeners"`
}

// Series are rates, one per time.
type Series struct {
	Received []float64 `json:"received"`
	Sent     []float64 `json:"sent"`
	Dropped  []float64 `json:"dropped"` // every reason, the kernel's included
}

func build(opts Options, n int) Doc {
	now := time.Now()
	d := Doc{
		Version:       opts.Version,
		StartTime:     opts.Start.UTC(),
		UptimeSeconds: now.Sub(opts.Start).Round(time.Millisecond).Seconds(),
		Health:        "SERVING",
		Listeners:     []Listener{},
	}
	if opts.Health != nil {
		d.Health = opts.Health()
	}
	if snap := opts.Sampler.Latest(); snap != nil {
		d.Time = snap.Time.UTC()
		d.Total = counters(snap.Total)
		for _, l := range opts.Listeners() {
			// One started since the reading shows zeros until the next.
			c, _ := snap.Listener(l.ID)
			l.Stats = c.Stats
			d.Listeners = append(d.Listeners, row(l))
		}
	}
	h := opts.Sampler.History(n)
	d.History = History{Times: make([]int64, len(h.Times)), Total: series(h.Total), Listeners: make(map[string]Series, len(h.Listeners))}
	for i, t := range h.Times {
		d.History.Times[i] = t.UnixMilli()
	}
	for _, l := range h.Listeners {
		d.History.Listeners[l.ID] = series(l.Series)
	}
	return d
}

func row(l manager.Listener) Listener {
	r := Listener{ID: l.ID, Address: l.Address, Workers: l.Workers, State: l.State.String(), Generation: l.Generation, Counters: counters(l.Stats)}
	if l.BoundAddress.IsValid() {
		r.BoundAddress = l.BoundAddress.String()
	}
	return r
}

func counters(s listener.Stats) Counters {
	return Counters{
		DatagramsReceived: s.DatagramsReceived,
		DatagramsSent:     s.DatagramsSent,
		BytesReceived:     s.BytesReceived,
		BytesSent:         s.BytesSent,
		RepliesTooLarge:   s.RepliesTooLarge,
		SendErrors:        s.SendErrors,
		LoopBlocked:       s.LoopBlocked,
		RateLimited:       s.RateLimited,
		KernelDrops:       s.KernelDrops,
		ReadErrors:        s.ReadErrors,
	}
}

func series(s sampler.Series) Series {
	round := func(v []float64) []float64 {
		for i, x := range v {
			v[i] = float64(int64(x*10+0.5)) / 10
		}
		return v
	}
	return Series{Received: round(s.Received), Sent: round(s.Sent), Dropped: round(s.Dropped)}
}
