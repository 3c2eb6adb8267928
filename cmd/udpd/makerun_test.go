package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMakeRunExitsZeroOnCtrlC runs make run on a pseudo-terminal (through
// script(1)), types Ctrl-C once udpd is ready, and checks that make exits
// 0: Ctrl-C must reach udpd alone, which shuts down cleanly, and not make,
// which would die of SIGINT (exit 130).
func TestMakeRunExitsZeroOnCtrlC(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds udpd")
	}
	for _, tool := range []string{"make", "script"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	if out, err := exec.Command("script", "-qec", "true", "/dev/null").CombinedOutput(); err != nil {
		t.Skipf("script(1) cannot open a pseudo-terminal here: %v %s", err, out)
	}
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	run := "make -C ../.. run BIN=" + dir + " ARGS='--listen 127.0.0.1:0 --admin 127.0.0.1:0 --state \"\" --ready-file " + ready + "'" +
		"; echo make-exit=$?"
	cmd := exec.Command("script", "-qec", run, "/dev/null")
	tty, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("make run ended before udpd was ready (%v):\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("udpd not ready after 60 s:\n%s", out.String())
		}
	}
	io.WriteString(tty, "\x03") // Ctrl-C, as typed
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("make run still running 30 s after Ctrl-C:\n%s", out.String())
	}
	tty.Close()
	if !strings.Contains(out.String(), "make-exit=0") {
		t.Errorf("make run after Ctrl-C: want exit status 0, got:\n%s", out.String())
	}
}
