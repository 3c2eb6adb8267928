// Tests of the deployment files: the container image (Containerfile) and
// the anycast fleet (fleet_test.go).
package deploy_test

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// containerTool is podman, or else docker; "" when neither is installed.
// Under CI=true a missing tool fails the test: CI installs podman.
func containerTool(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"podman", "docker"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI must build the image: install podman (Debian package podman)")
	}
	t.Skip("neither podman nor docker is installed; the image is not built")
	return ""
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// TestContainerImage builds deploy/Containerfile as `make image` does and
// checks what it promises: only the two binaries, static, on an empty
// base, run as a non-root user, with udpd as the entrypoint. The image's
// file system is exported (no container is started, so no runtime is
// needed) and its udpd binary is run on the host.
func TestContainerImage(t *testing.T) {
	tool := containerTool(t)
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "context")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", ctxDir+"/", "../cmd/udpd", "../cmd/udpctl")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	suffix := make([]byte, 4)
	rand.Read(suffix)
	tag := "localhost/udpd-image-test:" + hex.EncodeToString(suffix)
	run(t, tool, "build", "--pull=never", "-f", "Containerfile", "-t", tag, ctxDir)
	t.Cleanup(func() { exec.Command(tool, "rmi", "-f", tag).Run() })

	var inspect []struct {
		Size   int64
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]any
		}
	}
	if err := json.Unmarshal(run(t, tool, "image", "inspect", tag), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("image inspect: %v (%d images)", err, len(inspect))
	}
	img := inspect[0]
	t.Logf("image %s: %d bytes (%.1f MB)", tag, img.Size, float64(img.Size)/1e6)
	if img.Config.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (non-root, numeric)", img.Config.User)
	}
	if got := strings.Join(img.Config.Entrypoint, " "); got != "/usr/local/bin/udpd" {
		t.Errorf("entrypoint %q, want /usr/local/bin/udpd", got)
	}
	for _, p := range []string{"12000/udp", "50051/tcp", "9112/tcp"} {
		if _, ok := img.Config.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed; exposed: %v", p, img.Config.ExposedPorts)
		}
	}

	// The file system: exactly the two binaries, read-only and static.
	id := strings.TrimSpace(string(run(t, tool, "create", tag)))
	t.Cleanup(func() { exec.Command(tool, "rm", "-f", id).Run() })
	rootfs := filepath.Join(dir, "rootfs.tar")
	run(t, tool, "export", "-o", rootfs, id)
	files := untar(t, rootfs, filepath.Join(dir, "rootfs"))
	want := []string{"usr/local/bin/udpctl", "usr/local/bin/udpd"}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Errorf("image files %q, want only %q", files, want)
	}
	for _, f := range want {
		p := filepath.Join(dir, "rootfs", f)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o555 {
			t.Errorf("%s has mode %v, want 0555", f, fi.Mode().Perm())
		}
		e, err := elf.Open(p)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, prog := range e.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked (it has an interpreter); the image has no libc", f)
			}
		}
		e.Close()
	}
	out, err := exec.Command(filepath.Join(dir, "rootfs/usr/local/bin/udpd"), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "udpd ") {
		t.Errorf("the image's udpd --version: %v, %q", err, out)
	}
}

// untar extracts the regular files of the tar at path into dir and
// returns their names, sorted.
func untar(t *testing.T, path, dir string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := filepath.Clean(h.Name)
		if strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			t.Fatalf("tar entry %q escapes", h.Name)
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
