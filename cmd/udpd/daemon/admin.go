package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// adminListener opens the admin API's listener. A unix socket
// (unix:///path or unix:path) is created with mode 0600. Plain TCP is
// allowed on loopback only, unless TLS is configured or the operator said
// --admin-insecure: the admin API can start and stop listeners, so it is
// not served in clear text to the network by accident.
func adminListener(cfg *config, tlsOn bool) (net.Listener, error) {
	if path, ok := unixPath(cfg.admin); ok {
		return listenUnix(path)
	}
	host, _, err := net.SplitHostPort(cfg.admin)
	if err != nil {
		return nil, fmt.Errorf("--admin %q: want host:port or unix:///path", cfg.admin)
	}
	if !tlsOn && !cfg.adminInsecure && !isLoopback(host) {
		return nil, fmt.Errorf("--admin %s is not a loopback address: refusing to serve the admin API in plain text; "+
			"give --admin-tls-cert and --admin-tls-key (and --admin-client-ca for mutual TLS), "+
			"use a unix socket (--admin unix:///run/udpd/admin.sock), or say --admin-insecure", cfg.admin)
	}
	lis, err := net.Listen("tcp", cfg.admin)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	return lis, nil
}

func unixPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return p, true
	}
	return strings.CutPrefix(addr, "unix:")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// listenUnix listens on a unix socket that only this user can use. A
// socket file left by a crashed udpd is replaced; one that a live process
// answers on is not.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("admin API: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin API: %s: another process serves on it", path)
		}
		os.Remove(path)
	}
	// Create the socket with no access for others from the start, not
	// chmod'ed after a window in which anyone could connect.
	old := umask(0o177)
	lis, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("admin API: %w", err)
	}
	return lis, nil
}

// adminTLS builds the admin server's TLS configuration from the flags, or
// returns nil when TLS is off.
func adminTLS(cfg *config) (*tls.Config, error) {
	if cfg.adminTLSCert == "" && cfg.adminTLSKey == "" {
		if cfg.adminClientCA != "" {
			return nil, errors.New("--admin-client-ca needs --admin-tls-cert and --admin-tls-key")
		}
		return nil, nil
	}
	if cfg.adminTLSCert == "" || cfg.adminTLSKey == "" {
		return nil, errors.New("--admin-tls-cert and --admin-tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(cfg.adminTLSCert, cfg.adminTLSKey)
	if err != nil {
		return nil, fmt.Errorf("admin TLS: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.adminClientCA != "" {
		pem, err := os.ReadFile(cfg.adminClientCA)
		if err != nil {
			return nil, fmt.Errorf("admin TLS: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admin TLS: no certificate in %s", cfg.adminClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// adminToken reads the bearer token file. It must hold exactly one token
// of printable ASCII with no spaces, which is what an "authorization:
// Bearer TOKEN" header can carry, optionally followed by one line end.
// Anything else (two lines, spaces, control or non-ASCII bytes, nothing)
// is an error naming the file: a token that no client can send would lock
// every client out of a daemon that seems to run. The file should be
// private to the user (it is a password).
func adminToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--admin-token-file: %w", err)
	}
	tok := string(b)
	if t, ok := strings.CutSuffix(tok, "\n"); ok {
		tok = strings.TrimSuffix(t, "\r")
	}
	if tok == "" {
		return "", fmt.Errorf("--admin-token-file %s is empty", path)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("--admin-token-file %s: byte %d is %q: want one token of printable ASCII without spaces, on one line", path, i, c)
		}
	}
	return tok, nil
}
