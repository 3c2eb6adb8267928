package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// dial connects to the admin API (TCP host:port or unix:///path) and
// returns a context that carries the bearer token, if there is one.
func (a *app) dial(ctx context.Context, t daemonTarget) (*grpc.ClientConn, context.Context, error) {
	target := t.admin
	if !strings.Contains(target, "://") && !strings.HasPrefix(target, "unix:") {
		target = "passthrough:///" + target
	}
	creds, err := transportCredentials(t)
	if err != nil {
		return nil, nil, err
	}
	token, err := token(t)
	if err != nil {
		return nil, nil, err
	}
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("admin address %q: %w", t.admin, err)}
	}
	return conn, ctx, nil
}

func token(a daemonTarget) (string, error) {
	if a.tokenFile == "" {
		return strings.TrimSpace(os.Getenv("UDPCTL_TOKEN")), nil
	}
	b, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return "", failure{fmt.Errorf("--token-file: %w", err)}
	}
	return strings.TrimSpace(string(b)), nil
}

func transportCredentials(a daemonTarget) (credentials.TransportCredentials, error) {
	switch {
	case a.cert != "" && a.key == "":
		return nil, usageError{fmt.Errorf("--cert %s needs --key, the file of its private key", a.cert)}
	case a.key != "" && a.cert == "":
		return nil, usageError{fmt.Errorf("--key %s needs --cert, the file of its certificate", a.key)}
	case !a.tls && a.caCert == "" && a.cert == "":
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.caCert != "" {
		pem, err := os.ReadFile(a.caCert)
		if err != nil {
			return nil, failure{fmt.Errorf("--cacert: %w", err)}
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, failure{fmt.Errorf("--cacert %s: no certificate found", a.caCert)}
		}
	}
	if a.cert != "" {
		cert, err := tls.LoadX509KeyPair(a.cert, a.key)
		if err != nil {
			return nil, failure{fmt.Errorf("--cert/--key: %w", err)}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// rpcErrorLine renders a failed call: "NotFound: listener … (reason
// LISTENER_NOT_FOUND; field id: …)".
func rpcErrorLine(st *status.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", st.Code(), st.Message())
	var extra []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			extra = append(extra, "reason "+d.GetReason())
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				extra = append(extra, "field "+v.GetField()+": "+v.GetDescription())
			}
		}
	}
	if len(extra) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(extra, "; "))
	}
	return b.String()
}
