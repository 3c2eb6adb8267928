package daemon

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/udpd/udpd/cmd/internal/buildinfo"
	"github.com/udpd/udpd/service/manager"
	"github.com/udpd/udpd/service/metrics"
)

// metricsServer serves /metrics: the listeners' counters (read at scrape
// time), the admin gRPC server's metrics, build info, and the Go runtime
// and process collectors.
type metricsServer struct {
	udpd *metrics.Collector   // the listeners' families, written directly
	reg  *prometheus.Registry // the rest
	grpc *grpcprom.ServerMetrics
	http *http.Server
	lis  net.Listener
}

// newMetrics registers the collectors. The HTTP side starts in serve.
func newMetrics(m *manager.Manager) *metricsServer {
	reg := prometheus.NewRegistry()
	g := grpcprom.NewServerMetrics()
	reg.MustRegister(
		g,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	return &metricsServer{udpd: metrics.New(m), reg: reg, grpc: g}
}

func buildInfo() prometheus.Collector {
	bi := buildinfo.Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "udpd_build_info",
		Help:        "Always 1: the version, VCS revision and Go version udpd was built from.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion},
	})
	g.Set(1)
	return g
}

// metricsTLS serves metrics with the admin API's certificate but never
// asks scrapers for a client certificate.
func metricsTLS(admin *tls.Config) *tls.Config {
	if admin == nil {
		return nil
	}
	c := admin.Clone()
	c.ClientAuth, c.ClientCAs = tls.NoClientCert, nil
	return c
}

// listen opens the metrics address: loopback only, unless TLS is on or the
// operator said --metrics-insecure.
// The status page (page) is served at / beside /metrics, under the same
// rule.
func (s *metricsServer) listen(addr string, tlsCfg *tls.Config, insecure bool, page http.Handler) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics %q: want host:port", addr)
	}
	if tlsCfg == nil && !insecure && !isLoopback(host) {
		return fmt.Errorf("--metrics %s is not a loopback address: refusing to serve metrics in plain text; "+
			"configure the admin TLS flags (metrics then use them too) or say --metrics-insecure", addr)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s.serveOn(lis, tlsCfg, page)
	return nil
}

// serveOn sets up the HTTP server on lis (bound here, or inherited).
func (s *metricsServer) serveOn(lis net.Listener, tlsCfg *tls.Config, page http.Handler) {
	s.lis = lis
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(s.udpd, s.reg))
	mux.Handle("/", page)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsCfg}
}

func (s *metricsServer) serve(log *slog.Logger) {
	var err error
	if s.http.TLSConfig != nil {
		err = s.http.ServeTLS(s.lis, "", "")
	} else {
		err = s.http.Serve(s.lis)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server stopped", "err", err)
	}
}
