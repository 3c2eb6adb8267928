package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// TestDocs runs every ```sh block of docs/automation.md, in order, with
// bash -euo pipefail against a real udpd, so the examples cannot rot.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/automation.md")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("jq"); err != nil && os.Getenv("CI") != "" {
		t.Fatal("CI must run the docs examples, and they need jq (Debian package jq)")
	}
	blocks := shBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 5 {
		t.Fatalf("docs/automation.md has %d sh blocks; the parser is broken", len(blocks))
	}
	var script, files strings.Builder
	script.WriteString("[!exec:grpcurl] skip 'grpcurl not installed'\n[!exec:jq] skip 'jq not installed'\n")
	script.WriteString("exec udpd --listen 127.0.0.1:0 --admin 127.0.0.1:0 --state $WORK/state.json --ready-file $WORK/ready &udpd&\n")
	script.WriteString("waitready $WORK/ready\nenv ADMIN=$UDPCTL_ADMIN\n")
	script.WriteString("exec udpctl send one\nexec udpctl send two\n")
	for i, b := range blocks {
		name := fmt.Sprintf("block%02d.sh", i+1)
		fmt.Fprintf(&script, "exec bash -euo pipefail %s\n", name)
		fmt.Fprintf(&files, "-- %s --\n%s", name, b[1])
	}
	script.WriteString("sigterm\nwait udpd\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "automation.txtar"), []byte(script.String()+files.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, scriptParams(t, dir))
}
