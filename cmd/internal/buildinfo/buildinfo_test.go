package buildinfo

import (
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	const hash = "0123456789abcdef0123456789abcdef01234567"
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: hash}, {Key: "vcs.modified", Value: "true"}}}
	tagged := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.3.0"}}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	template := "$Format:%(describe:tags)$ $Format:%H$\n"
	for _, tc := range []struct {
		name              string
		ldV, ldR, archive string
		bi                *debug.BuildInfo
		want              Info
	}{
		{"ldflags win", "v1.2.0-3-gabc1234-dirty", hash, "v0.9.0 ffff\n", vcs, Info{"v1.2.0-3-gabc1234-dirty", hash, "go1.26.8"}},
		{"tarball", "", "", "v1.2.0 " + hash + "\n", bare, Info{"v1.2.0", hash, "go1.26.8"}},
		{"tarball without a tag", "", "", " " + hash + "\n", bare, Info{"devel", hash, "go1.26.8"}},
		{"checkout with -buildvcs", "", "", template, vcs, Info{"devel", hash + "-dirty", "go1.26.8"}},
		{"go install @version", "", "", template, tagged, Info{"v1.3.0", "unknown", "go1.26.8"}},
		{"-buildvcs=false without make", "", "", template, bare, Info{"devel", "unknown", "go1.26.8"}},
		{"no build info", "", "", template, nil, Info{"devel", "unknown", "unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.ldV, tc.ldR, tc.archive, tc.bi); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{"v1.2.0", "0123456789abcdef0123", "go1.26.8"}, "v1.2.0 (revision 0123456789ab, go1.26.8)"},
		{Info{"devel", "0123456789abcdef0123-dirty", "go1.26.8"}, "devel (revision 0123456789ab-dirty, go1.26.8)"},
		{Info{"devel", "unknown", "go1.26.8"}, "devel (revision unknown, go1.26.8)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestArchiveIsStamped checks that git archive (a release tarball) fills
// in archive.txt, as .gitattributes asks, so that such a build knows its
// commit.
func TestArchiveIsStamped(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	out, err := exec.Command("sh", "-c", "git archive HEAD archive.txt | tar -xO").Output()
	if err != nil {
		t.Fatalf("git archive: %v", err)
	}
	info := resolve("", "", string(out), nil)
	if want := strings.TrimSpace(string(head)); info.Revision != want {
		t.Errorf("archive.txt in a tarball: %q gives revision %q, want %q", out, info.Revision, want)
	}
}
