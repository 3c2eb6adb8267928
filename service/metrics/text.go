package metrics

import (
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/udpd/udpd/service/manager"
)

// Handler serves /metrics: c's families written directly in the text
// format (0.0.4) from one reading of the listeners, then every family of
// rest through client_golang's encoder. At 10,000 listeners (130,000
// series) building a dto.Metric per series, checking and sorting them was
// most of a scrape. A scraper that asks for protobuf gets the ordinary
// promhttp handler over both; one that asks for OpenMetrics gets text
// 0.0.4, as from promhttp without OpenMetrics. The answer is gzipped (at
// the fastest level) for a scraper that accepts gzip. rest must not hold
// c.
func Handler(c *Collector, rest *prometheus.Registry) http.Handler {
	own := prometheus.NewRegistry()
	own.MustRegister(c)
	return &handler{
		c:        c,
		rest:     rest,
		fallback: promhttp.HandlerFor(prometheus.Gatherers{rest, own}, promhttp.HandlerOpts{Registry: rest}),
	}
}

type handler struct {
	c        *Collector
	rest     prometheus.Gatherer
	fallback http.Handler
	bufs     sync.Pool // *[]byte, reused between scrapes
	zips     sync.Pool // *gzip.Writer: half a megabyte of state each
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.Negotiate(r.Header)
	if format.FormatType() != expfmt.TypeTextPlain {
		h.fallback.ServeHTTP(w, r)
		return
	}
	mfs, err := h.rest.Gather()
	if err != nil {
		h.fallback.ServeHTTP(w, r) // it reports the error as promhttp does
		return
	}
	bp, _ := h.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := (*bp)[:0]
	// Families in the order of their names, as the registry writes them.
	snap := h.c.snapshot()
	enc := expfmt.NewEncoder((*bytesWriter)(&b), format)
	i := 0
	for _, mf := range mfs {
		for ; i < len(families) && families[i].name < mf.GetName(); i++ {
			b = snap.appendFamily(b, i)
		}
		enc.Encode(mf)
	}
	for ; i < len(families); i++ {
		b = snap.appendFamily(b, i)
	}
	w.Header().Set("Content-Type", string(format))
	if acceptsGzip(r.Header) {
		w.Header().Set("Content-Encoding", "gzip")
		z, _ := h.zips.Get().(*gzip.Writer)
		if z == nil {
			z, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		} else {
			z.Reset(w)
		}
		z.Write(b)
		z.Close()
		h.zips.Put(z)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}
	*bp = b
	h.bufs.Put(bp)
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// (with a q other than 0).
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}

// bytesWriter appends to a byte slice.
type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}

// AppendText appends c's families to b in the Prometheus text format
// 0.0.4, in the order of their names, each family's HELP and TYPE once,
// from one reading of the listeners.
func (c *Collector) AppendText(b []byte) []byte {
	snap := c.snapshot()
	for i := range families {
		b = snap.appendFamily(b, i)
	}
	return b
}

// snapshot is one reading of the listeners, with their labels.
type snapshot struct {
	ls      []manager.Listener
	lbs     []*labels
	running int
}

func (c *Collector) snapshot() snapshot {
	ls, _ := c.src.List("", 0)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := snapshot{ls: ls, lbs: make([]*labels, len(ls))}
	cache := make(map[string]*labels, len(ls))
	for i, l := range ls {
		s.lbs[i] = c.labelsOf(l, cache)
		if l.State == manager.StateRunning {
			s.running++
		}
	}
	c.cache = cache
	return s
}

// appendFamily appends families[i]: its HELP and TYPE, then its series;
// nothing for a family without series, as the registry does.
func (s snapshot) appendFamily(b []byte, i int) []byte {
	f := families[i]
	if len(s.ls) == 0 && f.labels != nil {
		return b
	}
	b = append(b, "# HELP "...)
	b = append(b, f.name...)
	b = append(b, ' ')
	b = append(b, escapeHelp.Replace(f.help)...)
	b = append(b, "\n# TYPE "...)
	b = append(b, f.name...)
	if f.counter {
		b = append(b, " counter\n"...)
	} else {
		b = append(b, " gauge\n"...)
	}
	if f.name == "udpd_listeners" {
		return appendSample(b, f.name, "", "", float64(s.running))
	}
	for i, l := range s.ls {
		lb, st := s.lbs[i], l.Stats
		switch f.name {
		case "udpd_bytes_received_total":
			b = appendSample(b, f.name, lb.text, "", float64(st.BytesReceived))
		case "udpd_bytes_sent_total":
			b = appendSample(b, f.name, lb.text, "", float64(st.BytesSent))
		case "udpd_datagrams_dropped_total":
			for j, v := range [...]uint64{st.KernelDrops, st.LoopBlocked, st.RateLimited, st.SendErrors, st.RepliesTooLarge} {
				b = appendSample(b, f.name, lb.text, `,reason="`+dropReasons[j]+`"`, float64(v))
			}
		case "udpd_datagrams_received_total":
			b = appendSample(b, f.name, lb.text, "", float64(st.DatagramsReceived))
		case "udpd_datagrams_sent_total":
			b = appendSample(b, f.name, lb.text, "", float64(st.DatagramsSent))
		case "udpd_listener_generation":
			b = appendSample(b, f.name, lb.text, "", float64(l.Generation))
		case "udpd_listener_info":
			b = append(b, f.name...)
			b = append(b, lb.infoText...)
			b = append(b, " 1\n"...)
		case "udpd_listener_state":
			for _, state := range states {
				v := 0.0
				if l.State == state {
					v = 1
				}
				b = appendSample(b, f.name, lb.text, `,state="`+state.String()+`"`, v)
			}
		case "udpd_read_errors_total":
			b = appendSample(b, f.name, lb.text, "", float64(st.ReadErrors))
		}
	}
	return b
}

// appendSample appends one line: name{listener="…"<more>} value, where
// listener is the escaped `listener="…"` pair ("" for none).
func appendSample(b []byte, name, listener, more string, v float64) []byte {
	b = append(b, name...)
	if listener != "" {
		b = append(b, '{')
		b = append(b, listener...)
		b = append(b, more...)
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	return append(b, '\n')
}

var (
	escapeHelp  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	escapeLabel = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)
