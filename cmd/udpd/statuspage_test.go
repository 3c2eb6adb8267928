package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium. Without it the browser test skips,
// except under CI=true, where .ci/run installs it and the test must run.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI must run the status page in a browser: chromium is not installed (apt-get install -y chromium)")
	}
	t.Skip("status page browser test: chromium not found (Debian: apt-get install chromium)")
	return ""
}

// artifactDir is where tests leave files for people to look at:
// $UDPD_ARTIFACTS, or udpd-artifacts in the system's temporary directory
// (never inside the repository).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("UDPD_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "udpd-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestStatusPageInBrowser runs the real udpd with two listeners, sends
// traffic (some of it refused as too large, so a drop reason moves), and
// opens the status page in headless Chromium: the listener rows and the
// charts must appear, the counters must move from one update to the
// next, and the page must log no JavaScript error. It saves a screenshot
// (status-page.png in artifactDir).
func TestStatusPageInBrowser(t *testing.T) {
	browser := chromium(t)
	bin := udpdBinary(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--state", "", "--metrics", "127.0.0.1:0", "--max-reply-ratio", "1.2", "--workers", "1",
		"--ready-file", ready, "--log-level", "warn")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	metrics, listeners := waitMetrics(t, ready, &stderr)
	if len(listeners) != 2 {
		t.Fatalf("listeners in the ready file: got %v, want 2", listeners)
	}

	// Traffic until the test ends (2 minutes at most): ASCII to both, and
	// to the second a text whose uppercase is 1.5 times longer, which
	// --max-reply-ratio 1.2 refuses (replies_too_large).
	trafficCtx, stopTraffic := context.WithTimeout(context.Background(), 2*time.Minute)
	var wg sync.WaitGroup
	defer func() { stopTraffic(); wg.Wait() }()
	for i, addr := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(trafficCtx, addr, i == 1)
		}()
	}

	ctx, cancel := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1600, 1000))...)
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// Every error the page logs: exceptions, console.error, and the
	// browser's own (a failed request, a blocked resource).
	var (
		mu     sync.Mutex
		jsErrs []string
	)
	consoleCtx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	messages := chromedp.Console(consoleCtx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				mu.Lock()
				jsErrs = append(jsErrs, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()

	url := "http://" + metrics + "/"
	err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		// The listener rows, with traffic in them.
		waitJS(`document.querySelectorAll("#listeners tbody tr").length === 2 &&
			[...document.querySelectorAll("#listeners tbody tr td.received")].every(td => Number(td.textContent) > 0)`),
	)
	if err != nil {
		t.Fatalf("browsing %s: %v\nudpd stderr:\n%s", url, err, &stderr)
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
		if err != nil {
			t.Fatalf("counting %s: %v", sel, err)
		}
		return n
	}
	if n := count("#total-chart svg polyline"); n != 3 {
		t.Errorf("lines in the chart of all listeners: got %d, want 3 (in, out, dropped)", n)
	}
	if n := count("#charts figure"); n != 2 {
		t.Errorf("per-listener charts: got %d, want 2", n)
	}
	if n := count("#charts figure svg polyline"); n != 6 {
		t.Errorf("lines in the per-listener charts: got %d, want 6", n)
	}
	if n := count("#listeners tbody tr td.hot"); n == 0 {
		t.Errorf("no drop reason highlighted; want the second listener's replies too large")
	}
	health, err := chromedp.Run(ctx, chromedp.Text("#health"))
	if err != nil || health != "SERVING" {
		t.Errorf("health: got %q, %v, want SERVING", health, err)
	}

	// The numbers move: two updates later, every listener's counters and
	// the rates are up.
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](receivedCells))
	if err != nil {
		t.Fatal(err)
	}
	updates, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Number(document.body.dataset.updates)`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, waitJS(`Number(document.body.dataset.updates) >= `+strconv.Itoa(updates+2))); err != nil {
		t.Fatalf("the page stopped updating after %d updates: %v", updates, err)
	}
	later, err := chromedp.Run(ctx, chromedp.Evaluate[string](receivedCells))
	if err != nil {
		t.Fatal(err)
	}
	if !moved(first, later) {
		t.Errorf("received counters two updates apart: got %q then %q, want each to grow", first, later)
	}
	if err := chromedp.Do(ctx, waitJS(`[...document.querySelectorAll("#listeners tbody tr td.in")].every(td => Number(td.textContent) > 0)`)); err != nil {
		t.Errorf("in/s never above zero on every row: %v", err)
	}
	// Let the chart show a few seconds of traffic before the picture.
	if err := chromedp.Do(ctx, waitJS(`Number(document.body.dataset.updates) >= `+strconv.Itoa(updates+6))); err != nil {
		t.Fatal(err)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifactDir(t), "status-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); received %s then %s", shot, len(png), first, later)

	stopConsole()
	mu.Lock()
	defer mu.Unlock()
	if len(jsErrs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(jsErrs, "\n"))
	}
}

// receivedCells is a JavaScript expression: the "received" column of the
// table, one number per listener, space-separated.
const receivedCells = `[...document.querySelectorAll("#listeners tbody tr td.received")].map(td => td.textContent).join(" ")`

// waitJS waits (30 s at most) until the JavaScript expression expr is
// true.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond))(ctx, t)
		return err
	})
}

// moved reports whether every number of later is above its counterpart
// in first.
func moved(first, later string) bool {
	a, b := strings.Fields(first), strings.Fields(later)
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		x, err1 := strconv.ParseUint(a[i], 10, 64)
		y, err2 := strconv.ParseUint(b[i], 10, 64)
		if err1 != nil || err2 != nil || y <= x {
			return false
		}
	}
	return true
}

// waitMetrics waits for udpd's ready file and returns the metrics address
// and the listeners' addresses in order.
func waitMetrics(t *testing.T, ready string, stderr *bytes.Buffer) (string, []string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(ready)
		if err == nil {
			var metrics string
			var ls []string
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "metrics":
					metrics = f[1]
				case len(f) == 3 && f[0] == "listener":
					ls = append(ls, f[2])
				}
			}
			if metrics != "" {
				return metrics, ls
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("udpd not ready after 20s; stderr:\n%s", stderr)
		}
	}
}

// send keeps a few datagrams a millisecond going to addr until ctx is
// done, reading the replies; with tooLarge, every fourth datagram is one
// whose reply --max-reply-ratio refuses. At most 200,000 datagrams.
func send(ctx context.Context, addr string, tooLarge bool) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := c.Read(buf); err != nil && ctx.Err() != nil {
				return
			}
		}
	}()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for i := 0; i < 200_000; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		msg := "status page traffic"
		if tooLarge && i%4 == 0 {
			msg = "ŉŉŉŉ" // ŉ becomes ʼN: 2 bytes to 3
		}
		c.Write([]byte(msg))
	}
}
