package admin_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
	"github.com/udpd/udpd/service/manager"
)

const serviceName = "udpd.admin.v1.ListenerService"

func TestHealth(t *testing.T) {
	e := newEnv(t, manager.Options{})
	health := healthpb.NewHealthClient(e.conn)
	check := func(t *testing.T, service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("Check(%q): %v", service, err)
		}
		if got := resp.GetStatus(); got != want {
			t.Errorf("Check(%q): got %v, want %v", service, got, want)
		}
	}
	for _, service := range []string{"", serviceName} {
		t.Run("serving "+service, func(t *testing.T) {
			check(t, service, healthpb.HealthCheckResponse_SERVING)
		})
	}
	t.Run("unknown service", func(t *testing.T) {
		_, err := health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
		if got := status.Code(err); got != codes.NotFound {
			t.Errorf("Check(no.such.Service): got %v, want %v", err, codes.NotFound)
		}
	})
	e.srv.Drain()
	e.srv.Drain() // twice is fine
	for _, service := range []string{"", serviceName} {
		t.Run("drained "+service, func(t *testing.T) {
			check(t, service, healthpb.HealthCheckResponse_NOT_SERVING)
		})
	}
}

func TestReflection(t *testing.T) {
	e := newEnv(t, manager.Options{})
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ask := func(t *testing.T, req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("reflection %v: error %v", req, e)
		}
		return resp
	}

	resp := ask(t, &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{serviceName, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("services: got %v, want %s among them", names, want)
		}
	}

	resp = ask(t, &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: serviceName}})
	files := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(files) == 0 {
		t.Fatalf("file containing %s: got none", serviceName)
	}
	var fd descriptorpb.FileDescriptorProto
	if err := proto.Unmarshal(files[0], &fd); err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, s := range fd.GetService() {
		for _, m := range s.GetMethod() {
			methods = append(methods, m.GetName())
		}
	}
	want := []string{"StartListener", "StopListener", "RebindListener", "GetListener", "ListListeners", "GetStats", "WatchStats", "GetVersion", "GetConfig", "ApplyConfig", "UpdateListener", "Upgrade"}
	if fd.GetPackage() != "udpd.admin.v1" || !slices.Equal(methods, want) {
		t.Errorf("descriptor: got package %q methods %v, want udpd.admin.v1 and %v", fd.GetPackage(), methods, want)
	}
}

// TestLogging checks that every call is logged once it finishes, with its
// method and code, through the injected logger.
func TestLogging(t *testing.T) {
	var logs syncBuffer
	m := manager.New(manager.Options{Workers: 1})
	t.Cleanup(func() { m.Shutdown(ctx(t)) })
	e := serve(t, m, admin.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	_, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetListener: got %v, want NotFound", err)
	}
	waitFor(t, "the call to be logged", func() bool { return strings.Contains(logs.String(), "finished call") })
	got := logs.String()
	for _, want := range []string{"grpc.method=GetListener", "grpc.code=NotFound", "grpc.service=" + serviceName} {
		if !strings.Contains(got, want) {
			t.Errorf("log: got %q, want it to contain %q", got, want)
		}
	}
}

// TestRecovery makes handlers panic (a Service over a nil manager does)
// and checks that the call fails with INTERNAL, the panic is logged, and
// the server keeps serving.
func TestRecovery(t *testing.T) {
	var logs syncBuffer
	e := serve(t, nil, admin.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	_, err := e.client.GetListener(ctx(t), &adminv1.GetListenerRequest{Id: "a"})
	wantStatus(t, err, codes.Internal, "INTERNAL")
	if msg := status.Convert(err).Message(); msg != "internal error" {
		t.Errorf("message: got %q, want %q (no panic details for clients)", msg, "internal error")
	}
	stream, err := e.client.WatchStats(ctx(t), &adminv1.WatchStatsRequest{ListenerId: "a"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantStatus(t, err, codes.Internal, "INTERNAL")

	if n := strings.Count(logs.String(), "panic in admin call"); n != 2 {
		t.Errorf("panics logged: got %d, want 2\n%s", n, logs.String())
	}
	resp, err := healthpb.NewHealthClient(e.conn).Check(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after panics: got %v, %v, want SERVING", resp, err)
	}
}
