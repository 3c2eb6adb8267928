package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/udpd/udpd/cmd/udpctl/cli"
	"github.com/udpd/udpd/cmd/udpd/daemon"
)

// grpcurlVersion is the grpcurl the end-to-end scripts run.
const grpcurlVersion = "v1.9.4"

func TestMain(m *testing.M) {
	// The scripts run udpd and udpctl as real processes: this test binary,
	// re-executed under those names.
	testscript.Main(m, map[string]func(){
		"udpd":   daemon.Main,
		"udpctl": cli.Main,
	})
}

// TestScripts runs testdata/script/*.txtar: udpd and udpctl driven end to
// end on loopback, as a user would.
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/script"))
}

// scriptParams are the settings every script runs with: udpd and udpctl
// as commands, grpcurl on PATH, and the custom commands below.
func scriptParams(t *testing.T, dir string) testscript.Params {
	grpcurlDir := findGrpcurl(t)
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The race runtime sleeps 1 s at exit by default; the scripts
			// start many processes.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			if grpcurlDir != "" {
				env.Setenv("PATH", grpcurlDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			}
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, "state"))
			env.Setenv("UDPCTL_ADMIN", "")
			env.Setenv("UDPCTL_CONTEXT", "")
			env.Setenv("UDPCTL_CONFIG", "")
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("UDPCTL_SERVER", "")
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond != "ipv6" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			c, err := net.ListenPacket("udp6", "[::1]:0")
			if err != nil {
				return false, nil
			}
			c.Close()
			return true, nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitready":  cmdWaitReady,
			"sigterm":    cmdSigterm,
			"sighup":     cmdSighup,
			"exits":      cmdExits,
			"jsondocs":   cmdJSONDocs,
			"jsoneq":     cmdJSONEq,
			"gencerts":   cmdGenCerts,
			"httpget":    cmdHTTPGet,
			"httpwait":   cmdHTTPWait,
			"notifysock": cmdNotifySock,
			"waitfor":    cmdWaitFor,
			"stdoutenv":  cmdStdoutEnv,
			"waitgone":   cmdWaitGone,
			"sleep":      cmdSleep,
			"envsubst":   cmdEnvsubst,
		},
	}
}

// findGrpcurl returns the directory of a grpcurl binary: on PATH, or
// installed once from the module proxy into the user's cache. In CI a
// missing grpcurl fails the test; elsewhere the scripts that need it skip.
func findGrpcurl(t *testing.T) string {
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return filepath.Dir(p)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "udpd-test", "grpcurl-"+grpcurlVersion)
	if _, err := os.Stat(filepath.Join(dir, "grpcurl")); err == nil {
		return dir
	}
	cmd := exec.Command("go", "install", "github.com/fullstorydev/grpcurl/cmd/grpcurl@"+grpcurlVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err == nil {
		return dir
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("installing grpcurl %s: %v\n%s", grpcurlVersion, err, out)
	}
	t.Logf("grpcurl not available (%v); scripts needing it skip", err)
	return ""
}

// waitready FILE waits (up to 20 s) for udpd's --ready-file and exports
// UDPCTL_ADMIN (the admin address), UDPCTL_SERVER (the first listener's
// address), UDP_1, UDP_2, … (each listener's address, in the order udpd
// started them), PORT_1, PORT_2, … (their ports), ID_1, ID_2, … (their
// ids), UDP_<id> (the
// address by id, dashes as underscores) and METRICS (with --metrics).
func cmdWaitReady(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitready FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(20 * time.Second)
	var b []byte
	for {
		var err error
		b, err = os.ReadFile(path)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			ts.Fatalf("udpd not ready after 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "admin":
			ts.Setenv("UDPCTL_ADMIN", f[1])
		case len(f) == 2 && f[0] == "metrics":
			ts.Setenv("METRICS", f[1])
		case len(f) == 3 && f[0] == "listener":
			n++
			ts.Setenv("UDP_"+strconv.Itoa(n), f[2])
			ts.Setenv("ID_"+strconv.Itoa(n), f[1])
			if _, port, err := net.SplitHostPort(f[2]); err == nil {
				ts.Setenv("PORT_"+strconv.Itoa(n), port)
			}
			ts.Setenv("UDP_"+strings.ReplaceAll(f[1], "-", "_"), f[2])
			if n == 1 {
				ts.Setenv("UDPCTL_SERVER", f[2])
			}
		}
	}
	os.Remove(path) // so the next waitready waits for the next udpd
}

// sigterm sends SIGTERM to every background command (udpd); wait collects
// them.
func cmdSigterm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: sigterm")
	}
	for _, c := range ts.BackgroundCmds() {
		if c.Process != nil {
			ts.Check(c.Process.Signal(syscall.SIGTERM))
		}
	}
}

// sighup sends SIGHUP to every background command (udpd --config
// reloads its configuration file).
func cmdSighup(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: sighup")
	}
	for _, c := range ts.BackgroundCmds() {
		if c.Process != nil {
			ts.Check(c.Process.Signal(syscall.SIGHUP))
		}
	}
}

// exits CODE PROG ARGS... runs PROG and checks its exit code; stdout and
// stderr are kept for the next commands like exec's.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// jsondocs FILE N checks that FILE holds exactly N JSON documents (N+:
// at least N).
func cmdJSONDocs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsondocs FILE N[+]")
	}
	atLeast := strings.HasSuffix(args[1], "+")
	want, err := strconv.Atoi(strings.TrimSuffix(args[1], "+"))
	ts.Check(err)
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile(args[0])))
	got := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			ts.Fatalf("%s: document %d: %v", args[0], got+1, err)
		}
		got++
	}
	if got != want && !(atLeast && got > want) {
		ts.Fatalf("%s holds %d JSON documents, want %s", args[0], got, args[1])
	}
}

// jsoneq A B [PATH...] checks that files A and B hold the same JSON
// document, leaving out the dotted PATHs (fields that legitimately differ
// between two calls, such as counters and times).
func cmdJSONEq(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: jsoneq A B [PATH...]")
	}
	var docs [2]map[string]any
	for i := range docs {
		if err := json.Unmarshal([]byte(ts.ReadFile(args[i])), &docs[i]); err != nil {
			ts.Fatalf("%s: %v", args[i], err)
		}
		for _, p := range args[2:] {
			deletePath(docs[i], strings.Split(p, "."))
		}
	}
	a, _ := json.Marshal(docs[0])
	b, _ := json.Marshal(docs[1])
	if eq := bytes.Equal(a, b); eq == neg {
		ts.Fatalf("%s and %s: equal = %v\n%s\n%s", args[0], args[1], eq, a, b)
	}
}

func deletePath(m map[string]any, path []string) {
	if len(path) == 1 {
		delete(m, path[0])
		return
	}
	if sub, ok := m[path[0]].(map[string]any); ok {
		deletePath(sub, path[1:])
	}
}

// gencerts DIR writes a test CA (ca.pem), a server certificate for
// 127.0.0.1 and localhost (server.pem, server-key.pem) and a client
// certificate (client.pem, client-key.pem), all signed by the CA.
func cmdGenCerts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gencerts DIR")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ts.Check(err)
		return k
	}
	write := func(name, typ string, der []byte) {
		ts.Check(os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		ts.Check(err)
		write(name, "PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "udpd test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ts.Check(err)
	ca, err := x509.ParseCertificate(caDER)
	ts.Check(err)
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "udpd test " + name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		ts.Check(err)
		write(name+".pem", "CERTIFICATE", der)
		writeKey(name+"-key.pem", k)
	}
}

// httpget URL fetches URL (10 s at most) into stdout; a status other
// than 200 fails.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(args[0])
	ok := err == nil && resp.StatusCode == http.StatusOK
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ts.Stdout().Write(b)
	}
	if ok == neg {
		ts.Fatalf("GET %s: err %v, status %v", args[0], err, resp)
	}
}

// httpwait URL REGEXP fetches URL until its body has a line matching
// REGEXP (10 s at most) and leaves that body in stdout: for documents
// that follow the daemon's state a moment later, such as status.json.
func cmdHTTPWait(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: httpwait URL REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	c := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for {
		resp, err := c.Get(args[0])
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && re.Match(body) {
				ts.Stdout().Write(body)
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("GET %s: no line matches %q after 10s (err %v); last body:\n%s", args[0], args[1], err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// notifysock PATH listens on a unix datagram socket, as systemd does for
// Type=notify services, and appends each message received to PATH.log
// until the script ends.
func cmdNotifySock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: notifysock PATH")
	}
	path := ts.MkAbs(args[0])
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	ts.Check(err)
	log, err := os.Create(path + ".log")
	ts.Check(err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			log.Write(append(buf[:n:n], '\n'))
		}
	}()
	ts.Defer(func() {
		c.Close()
		<-done
		log.Close()
	})
}

// stdoutenv NAME REGEXP sets NAME to the first group of REGEXP's first
// match in the last command's stdout (a pid an upgrade printed, say).
func cmdStdoutEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: stdoutenv NAME REGEXP")
	}
	m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("stdout has no match for %s", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// waitgone PID waits (up to 10 s) until process PID has exited: a udpd
// that an upgrade started is no background command of the script.
func cmdWaitGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitgone PID")
	}
	pid, err := strconv.Atoi(args[0])
	ts.Check(err)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + args[0] + "/stat")
		// Gone, or a zombie ("pid (comm) Z ...") nobody has reaped yet.
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
			ts.Fatalf("process %d still running after 10s", pid)
		}
	}
}

// waitfor FILE REGEXP waits (up to 10 s) until a line of FILE matches.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitfor FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		if re.Match(b) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s: no line matches %q after 10s; it holds:\n%s", args[0], args[1], b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sleep DURATION pauses the script (at most 10 s).
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(min(d, 10*time.Second))
}

// envsubst FILE replaces $NAME and ${NAME} in FILE with the script's
// environment, for files that must hold addresses known only at run time.
func cmdEnvsubst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: envsubst FILE")
	}
	path := ts.MkAbs(args[0])
	s := os.Expand(ts.ReadFile(args[0]), ts.Getenv)
	ts.Check(os.WriteFile(path, []byte(s), 0o600))
}
