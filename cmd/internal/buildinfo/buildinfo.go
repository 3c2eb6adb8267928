// Package buildinfo says which build a udpd or udpctl binary is: its
// version, VCS revision and Go version. Both commands print it for
// --version / version, and udpd exports it as udpd_build_info and answers
// it over the admin API (GetVersion).
//
// The version and revision come from the first of these that knows them:
//  1. the linker: the Makefile sets them from git describe and git
//     rev-parse (-ldflags -X), so they are right with -buildvcs=false too;
//  2. archive.txt, which git archive fills in (export-subst in
//     .gitattributes), so a build from a release tarball knows its commit;
//  3. the build info Go records: the module version (go install
//     …@v1.2.3) and the vcs.revision of a build inside a git checkout.
//
// What none of them knows is "devel" (version) or "unknown" (revision).
package buildinfo

import (
	_ "embed"
	"runtime/debug"
	"strings"
)

// Set with -ldflags "-X github.com/udpd/udpd/cmd/internal/buildinfo.version=…
// -X github.com/udpd/udpd/cmd/internal/buildinfo.revision=…".
var version, revision string

// archive is "$Format:%(describe:tags)$ $Format:%H$" in the repository and
// "v1.2.0 0123abcd…" in an archive made by git archive.
//
//go:embed archive.txt
var archive string

// Info is one build's identity.
type Info struct {
	Version   string // "v1.2.0", "v1.2.0-3-gabc1234-dirty", or "devel"
	Revision  string // the full commit hash (with "-dirty" if modified), or "unknown"
	GoVersion string // "go1.26.8"
}

// Get returns this binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, revision, archive, bi)
}

// Version is the version alone, e.g. "v1.2.0".
func Version() string { return Get().Version }

// Revision is the full commit hash, or "unknown".
func Revision() string { return Get().Revision }

// GoVersion is the Go release that built the binary.
func GoVersion() string { return Get().GoVersion }

// String is the one-line form: "v1.2.0 (revision 0123abcd4567, go1.26.8)".
func (i Info) String() string {
	r := i.Revision
	if h, dirty, ok := strings.Cut(r, "-"); ok && len(h) > 12 {
		r = h[:12] + "-" + dirty
	} else if len(r) > 12 && r != "unknown" {
		r = r[:12]
	}
	return i.Version + " (revision " + r + ", " + i.GoVersion + ")"
}

func resolve(ldVersion, ldRevision, archive string, bi *debug.BuildInfo) Info {
	info := Info{Version: ldVersion, Revision: ldRevision, GoVersion: "unknown"}
	// An archive's line, unless it is still the template. Without a tag
	// git describe says nothing, and only the hash is there.
	if f := strings.Fields(archive); !strings.Contains(archive, "$Format") && len(f) > 0 {
		if info.Revision == "" {
			info.Revision = f[len(f)-1]
		}
		if info.Version == "" && len(f) == 2 {
			info.Version = f[0]
		}
	}
	if bi != nil {
		info.GoVersion = bi.GoVersion
		if v := bi.Main.Version; info.Version == "" && v != "" && v != "(devel)" {
			info.Version = v
		}
		if info.Revision == "" {
			info.Revision = setting(bi, "vcs.revision")
			if info.Revision != "" && setting(bi, "vcs.modified") == "true" {
				info.Revision += "-dirty"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Revision == "" {
		info.Revision = "unknown"
	}
	return info
}

func setting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
