// Tests that keep the architecture honest: the datagram path never reaches
// gRPC or protobuf, generated code is imported only at the edges, and every
// package says what it is.
package service_test

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/udpd/udpd"

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

func TestDatagramPathImportsNoRPC(t *testing.T) {
	forbidden := []string{
		"google.golang.org/grpc",
		"google.golang.org/protobuf",
		module + "/gen/",
		module + "/service/admin",
		module + "/service/state",
		module + "/cmd/",
	}
	for _, pkg := range []string{"uppercase", "listener", "ratelimit", "manager", "loadgen", "sampler", "status", "config", "handoff"} {
		t.Run(pkg, func(t *testing.T) {
			for _, dep := range goList(t, "-deps", module+"/service/"+pkg) {
				for _, f := range forbidden {
					if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
						t.Errorf("service/%s depends on %s; the datagram path must not", pkg, dep)
					}
				}
			}
		})
	}
}

func TestGeneratedCodeOnlyAtTheEdges(t *testing.T) {
	allowed := map[string]bool{
		module + "/service/admin":     true,
		module + "/cmd/udpctl/cli":    true,
		module + "/gen/udpd/admin/v1": true,
	}
	for _, line := range goList(t, "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", module+"/...") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, module+"/gen/") && !allowed[pkg] {
				t.Errorf("%s imports %s; only service/admin and cmd/udpctl/cli may", pkg, imp)
			}
		}
	}
}

// TestTestHooksOnlyInTests: service/internal/testhook's switches put the
// daemon in states it otherwise refuses; only the listener reads one, and
// only tests set them (test files are not in .Imports).
func TestTestHooksOnlyInTests(t *testing.T) {
	const hook = module + "/service/internal/testhook"
	for _, line := range goList(t, "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", module+"/...") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Split(imports, ",") {
			if imp == hook && pkg != module+"/service/listener" {
				t.Errorf("%s imports %s; only service/listener (and tests) may", pkg, imp)
			}
		}
	}
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, line := range goList(t, "-f", "{{.Dir}}:{{.Name}}:{{join .GoFiles \",\"}}", module+"/...") {
		parts := strings.SplitN(line, ":", 3)
		dir, name, files := parts[0], parts[1], strings.Split(parts[2], ",")
		if strings.Contains(dir, "/gen/") || parts[2] == "" {
			continue
		}
		found := false
		for _, f := range files {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc != nil && strings.HasPrefix(file.Doc.Text(), packagePrefix(name)) {
				found = true
			}
		}
		if !found {
			t.Errorf("package %s (%s) has no doc comment starting %q", name, dir, packagePrefix(name))
		}
	}
}

func packagePrefix(name string) string {
	if name == "main" {
		return "Command "
	}
	return "Package " + name + " "
}

// TestDaemonRegistersNoCompressor: WatchStats encodes a snapshot once and
// sends the same bytes on every stream (service/admin watchMessage), which
// is right only while every stream encodes alike: no gRPC compressor may
// be linked into udpd (importing one registers it, and streams whose
// client compresses would then compress their replies).
func TestDaemonRegistersNoCompressor(t *testing.T) {
	for _, dep := range goList(t, "-deps", module+"/cmd/udpd") {
		if strings.HasPrefix(dep, "google.golang.org/grpc/encoding/") && dep != "google.golang.org/grpc/encoding/proto" && dep != "google.golang.org/grpc/encoding/internal" {
			t.Errorf("udpd links %s; WatchStats's shared encoding assumes no compressor", dep)
		}
	}
}
