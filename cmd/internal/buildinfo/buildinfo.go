// Package buildinfo says which build a udpd or udpctl binary is: the module
// version and VCS revision Go recorded when it built it. Both commands
// print it for --version, and udpd exports it as udpd_build_info.
package buildinfo

import "runtime/debug"

// Version is "VERSION REVISION[-dirty]", e.g. "(devel) 1a2b3c4d5e6f-dirty".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if r := Revision(); r != "" {
		v += " " + r[:min(12, len(r))]
	}
	if modified() {
		v += "-dirty"
	}
	return v
}

// Revision is the full VCS revision, or "" when none was recorded.
func Revision() string { return setting("vcs.revision") }

// GoVersion is the Go release that built the binary.
func GoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

func modified() bool { return setting("vcs.modified") == "true" }

func setting(key string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}
