package cli

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// call dials the admin API and runs fn with a client and a context bounded
// by the call timeout.
func (a *app) call(ctx context.Context, fn func(context.Context, adminv1.ListenerServiceClient) error) error {
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.rpcTimeout())
	defer cancel()
	return fn(ctx, adminv1.NewListenerServiceClient(conn))
}

func (a *app) dial() (*grpc.ClientConn, error) {
	target := a.admin
	if !strings.Contains(target, "://") && !strings.HasPrefix(target, "unix:") {
		target = "passthrough:///" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, usageError{fmt.Errorf("--admin %q: %w", a.admin, err)}
	}
	return conn, nil
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
