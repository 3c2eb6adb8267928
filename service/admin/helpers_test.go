package admin_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/internal/udptest"
	"github.com/udpd/udpd/service/manager"
)

const domain = "udpd.admin.v1"

// ignoreVolatile compares listeners and stats without what a test cannot
// know in advance: bound ports and times (checked separately where they
// matter).
var ignoreVolatile = cmp.Options{
	protocmp.Transform(),
	protocmp.IgnoreFields(&adminv1.Listener{}, "bound_address", "create_time", "bind_time"),
	protocmp.IgnoreFields(&adminv1.Stats{}, "start_time"),
	protocmp.IgnoreFields(&adminv1.GetStatsResponse{}, "time"),
	protocmp.IgnoreFields(&adminv1.WatchStatsResponse{}, "time"),
}

// ctx returns a context that ends with the test or after 10 s: the
// deadline of every call.
func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// env is a manager behind a real admin server and a client connected to it.
type env struct {
	m      *manager.Manager
	srv    *admin.Server
	conn   *grpc.ClientConn
	client adminv1.ListenerServiceClient
}

// newEnv serves a new manager (one socket per listener unless opts says
// otherwise) on 127.0.0.1:0.
func newEnv(t testing.TB, opts manager.Options) *env {
	t.Helper()
	if opts.Workers == 0 {
		opts.Workers = 1
	}
	m := manager.New(opts)
	e := serve(t, m, admin.Options{})
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Shutdown(c); err != nil {
			t.Errorf("manager Shutdown: %v", err)
		}
	})
	return e
}

// serve runs an admin server over m and connects a client to it; both are
// stopped at the end of the test, and Serve must then return nil.
func serve(t testing.TB, m *manager.Manager, opts admin.Options) *env {
	t.Helper()
	srv := admin.NewServer(m, opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop(2 * time.Second)
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: got %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after Stop")
		}
	})
	return &env{m: m, srv: srv, conn: conn, client: adminv1.NewListenerServiceClient(conn)}
}

// start starts a listener through the API.
func (e *env) start(t testing.TB, req *adminv1.StartListenerRequest) *adminv1.Listener {
	t.Helper()
	resp, err := e.client.StartListener(ctx(t), req)
	if err != nil {
		t.Fatalf("StartListener(%v): %v", req, err)
	}
	return resp.GetListener()
}

// boundAddr parses a listener's bound_address.
func boundAddr(t testing.TB, l *adminv1.Listener) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(l.GetBoundAddress())
	if err != nil || ap.Port() == 0 {
		t.Fatalf("bound_address of %s: got %q (%v), want a resolved host:port", l.GetId(), l.GetBoundAddress(), err)
	}
	return ap
}

// wantStatus checks err's code, its ErrorInfo (reason and domain; skipped
// when reason is empty) and, when fields are given, the BadRequest field
// violations and the ErrorInfo "field" metadata.
func wantStatus(t testing.TB, err error, code codes.Code, reason string, fields ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error: got %v, want a gRPC status", err)
	}
	if st.Code() != code {
		t.Fatalf("code: got %v (%q), want %v", st.Code(), st.Message(), code)
	}
	var (
		info *errdetails.ErrorInfo
		br   *errdetails.BadRequest
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			br = d
		default:
			t.Errorf("detail: got %T %v, want only ErrorInfo and BadRequest", d, d)
		}
	}
	if reason == "" {
		return
	}
	wantInfo := &errdetails.ErrorInfo{Reason: reason, Domain: domain}
	if len(fields) == 1 {
		wantInfo.Metadata = map[string]string{"field": fields[0]}
	}
	if diff := cmp.Diff(wantInfo, info, protocmp.Transform()); diff != "" {
		t.Errorf("ErrorInfo of %q (-want +got):\n%s", st.Message(), diff)
	}
	var gotFields []string
	for _, v := range br.GetFieldViolations() {
		gotFields = append(gotFields, v.GetField())
		if v.GetDescription() == "" {
			t.Errorf("field violation %q: got no description, want one", v.GetField())
		}
	}
	if !cmp.Equal(fields, gotFields) {
		t.Errorf("BadRequest fields: got %q, want %q", gotFields, fields)
	}
}

// UDP probes, shared with the other packages' tests.
var (
	echo        = udptest.Echo
	mustEcho    = udptest.MustEcho
	mustNotEcho = udptest.MustNotEcho
)

// freeAddr returns "host:port" with a port that was free a moment ago.
func freeAddr(t testing.TB, host string) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	defer c.Close()
	return net.JoinHostPort(host, strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
}

// skipWithoutIPv6 skips the test when [::1] cannot be bound.
func skipWithoutIPv6(t testing.TB) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("IPv6 loopback not available: %v", err)
	}
	c.Close()
}

// waitFor polls cond for up to 2 s (counters are added just after the
// replies are sent, so a reply may arrive before its count).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// failingStore is a manager.Store whose saves fail while fail is set.
type failingStore struct {
	mu   sync.Mutex
	fail bool
}

func (s *failingStore) Save([]manager.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errDiskFull
	}
	return nil
}

func (s *failingStore) setFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

var errDiskFull = errors.New("disk full")

// syncBuffer is a bytes.Buffer safe for a logger on server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
