//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// TestKillNineLosesNoAcknowledgedChange builds the real udpd and, over
// several rounds, makes random changes through the admin API, kills the
// daemon with SIGKILL at a random moment (often with a call in flight),
// restarts it with --resume and checks that every acknowledged change is
// there. The one change in flight at the kill may or may not be.
func TestKillNineLosesNoAcknowledgedChange(t *testing.T) {
	bin := udpdBinary(t)
	dir := t.TempDir()
	statePath := filepath.Join(dir, "state.json")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	want := map[string]bool{} // ids acknowledged as running
	maybe := ""               // the id whose change was in flight at the kill
	for round := range 6 {
		d := startDaemon(t, bin, statePath, dir)
		got := d.ids(t)
		// Everything acknowledged before the kill is back; the change in
		// flight at the kill (recorded as maybe) may or may not be.
		for id := range want {
			if !slices.Contains(got, id) && id != maybe {
				t.Fatalf("round %d: acknowledged listener %q missing after --resume; have %v", round, id, got)
			}
		}
		for _, id := range got {
			if !want[id] && !strings.HasPrefix(id, "udp-") && id != maybe {
				t.Fatalf("round %d: listener %q is back but was stopped or never acknowledged", round, id)
			}
		}
		want = map[string]bool{}
		for _, id := range got {
			want[id] = true
		}
		kill := time.Duration(rng.IntN(40)) * time.Millisecond
		timer := time.AfterFunc(kill, func() { d.cmd.Process.Signal(syscall.SIGKILL) })
		for i := 0; ; i++ {
			id := fmt.Sprintf("l%d", rng.IntN(8))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var err error
			maybe = id
			if want[id] {
				_, err = d.client.StopListener(ctx, &adminv1.StopListenerRequest{Id: id})
				if err == nil {
					delete(want, id)
				}
			} else {
				_, err = d.client.StartListener(ctx, &adminv1.StartListenerRequest{Id: id, Address: "127.0.0.1:0"})
				if err == nil {
					want[id] = true
				}
			}
			cancel()
			if err != nil {
				break // killed
			}
			maybe = ""
		}
		timer.Stop()
		d.cmd.Wait()
		d.conn.Close()
	}
}

type proc struct {
	cmd    *exec.Cmd
	conn   *grpc.ClientConn
	client adminv1.ListenerServiceClient
}

func startDaemon(t *testing.T, bin, statePath, dir string) *proc {
	t.Helper()
	ready := filepath.Join(dir, "ready")
	os.Remove(ready)
	cmd := exec.Command(bin, "--resume", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--state", statePath, "--ready-file", ready, "--workers", "1", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var admin string
	for deadline := time.Now().Add(20 * time.Second); admin == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("udpd not ready after 20s")
		}
		f, err := os.Open(ready)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "admin "); ok {
				admin = a
			}
		}
		f.Close()
	}
	conn, err := grpc.NewClient("passthrough:///"+admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return &proc{cmd: cmd, conn: conn, client: adminv1.NewListenerServiceClient(conn)}
}

func (d *proc) ids(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := d.client.ListListeners(ctx, &adminv1.ListListenersRequest{})
	if err != nil {
		t.Fatalf("ListListeners: %v", err)
	}
	var ids []string
	for _, l := range resp.GetListeners() {
		ids = append(ids, l.GetId())
	}
	return ids
}
