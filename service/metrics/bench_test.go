package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/udpd/udpd/service/listener"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
)

// listeners is a Source of fixed listeners, ordered by id.
type listeners []manager.Listener

func (ls listeners) List(string, int) ([]manager.Listener, bool) { return ls, false }

// BenchmarkScrape measures a text /metrics scrape of n listeners through
// Handler, without the sockets (BenchmarkTenThousandListeners in
// service/manager scrapes a real manager).
func BenchmarkScrape(b *testing.B) {
	benchScrape(b, "", func(c *metrics.Collector) http.Handler { return metrics.Handler(c, prometheus.NewRegistry()) })
}

// BenchmarkScrapeRegistry measures the same scrape through the registry
// and promhttp (what a protobuf scrape costs, and what a text scrape cost
// before Handler).
func BenchmarkScrapeRegistry(b *testing.B) {
	benchScrape(b, "", func(c *metrics.Collector) http.Handler {
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	})
}

// BenchmarkScrapeGzip is BenchmarkScrape for a scraper that accepts gzip,
// as Prometheus does.
func BenchmarkScrapeGzip(b *testing.B) {
	benchScrape(b, "gzip", func(c *metrics.Collector) http.Handler { return metrics.Handler(c, prometheus.NewRegistry()) })
}

func benchScrape(b *testing.B, encoding string, handler func(*metrics.Collector) http.Handler) {
	for _, n := range []int{1000, 10000} {
		ls := make(listeners, n)
		for i := range ls {
			ls[i] = manager.Listener{
				ID: fmt.Sprintf("l%05d", i), Address: "127.0.0.1:0", State: manager.StateRunning, Generation: 1,
				BoundAddress: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(10000+i)),
				Stats:        listener.Stats{DatagramsReceived: uint64(i), DatagramsSent: uint64(i), BytesReceived: 64 * uint64(i)},
			}
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := handler(metrics.New(ls))
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept-Encoding", encoding)
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
				n, _ := io.Copy(io.Discard, rec.Body)
				b.SetBytes(n)
			}
		})
	}
}
