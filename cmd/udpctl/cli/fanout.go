package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// maxParallel bounds how many daemons one command calls at once.
const maxParallel = 32

// reply is what one daemon's answer prints: the response messages for -o
// json, and a table and notes for text. A command fills it; fanout prints
// the replies of every daemon in the order the daemons were given.
type reply struct {
	docs  []proto.Message
	table *table
	notes []string
}

func (r *reply) doc(m proto.Message) { r.docs = append(r.docs, m) }

func (r *reply) rows(t *table) {
	if r.table == nil {
		r.table = &table{header: t.header}
	}
	r.table.rows = append(r.table.rows, t.rows...)
}

func (r *reply) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// callFunc is one command's work against one daemon.
type callFunc func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error

// call runs fn against every daemon the command addresses (see targets)
// and prints the replies.
func (a *app) call(cmd *cobra.Command, fn callFunc) error {
	return a.callWithin(cmd, 0, fn)
}

// callWithin is call with each daemon's deadline extra later, for a call
// that udpd may rightly take longer to answer, such as a stop that drains
// a listener. The daemons are called in parallel, each with its own
// deadline, so one that does not answer delays the command by at most
// that deadline.
//
// With one daemon the output is exactly that daemon's. With several, text
// tables gain a DAEMON column first, every line of a note is prefixed with
// the daemon's name, and each JSON document gains "daemon" (its admin
// address) and "context" (when it came from one). Each failed daemon's error is one
// line on stderr; the command then fails with the exit code of the first
// failed daemon, in the order given, and names every one that failed.
func (a *app) callWithin(cmd *cobra.Command, extra time.Duration, fn callFunc) error {
	targets, err := a.targets(cmd)
	if err != nil {
		return err
	}
	replies := make([]reply, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = a.callTarget(cmd.Context(), t, extra, func(ctx context.Context, c adminv1.ListenerServiceClient) error {
				return fn(ctx, c, &replies[i])
			})
		})
	}
	wg.Wait()

	if len(targets) == 1 {
		if err := a.printReply(cmd, replies[0]); err != nil {
			return err
		}
		return errs[0]
	}
	if err := a.printReplies(cmd, targets, replies, errs); err != nil {
		return err
	}
	return fleetErr(cmd, targets, errs)
}

// callTarget dials one daemon and runs fn with a context bounded by the
// call timeout plus extra.
func (a *app) callTarget(ctx context.Context, t daemonTarget, extra time.Duration, fn func(context.Context, adminv1.ListenerServiceClient) error) error {
	conn, ctx, err := a.dial(ctx, t)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.rpcTimeout()+max(extra, 0))
	defer cancel()
	return explain(t, fn(ctx, adminv1.NewListenerServiceClient(conn)))
}

// explain adds the question a user needs to a call that found no admin
// API: UNAVAILABLE without udpd's error details is the transport's, not
// udpd's (which says SHUTTING_DOWN). The code, and so the exit code, stays.
func explain(t daemonTarget, err error) error {
	switch e := err.(type) {
	case idErrors:
		out := make(idErrors, len(e))
		for i, one := range e {
			out[i] = idError{verb: one.verb, id: one.id, err: explain(t, one.err)}
		}
		return out
	case idError:
		return idError{verb: e.verb, id: e.id, err: explain(t, e.err)}
	}
	if _, direct := err.(interface{ GRPCStatus() *status.Status }); !direct {
		return err
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable || len(st.Details()) > 0 {
		return err
	}
	return status.Error(codes.Unavailable, st.Message()+" (is udpd running at "+t.admin+"?)")
}

func (a *app) printReply(cmd *cobra.Command, r reply) error {
	out := cmd.OutOrStdout()
	if a.json() {
		for _, m := range r.docs {
			if err := printJSON(out, m); err != nil {
				return err
			}
		}
		return nil
	}
	if r.table != nil {
		if err := r.table.write(out, !a.noHeaders); err != nil {
			return err
		}
	}
	for _, n := range r.notes {
		if _, err := fmt.Fprintln(out, n); err != nil {
			return err
		}
	}
	return nil
}

// printReplies prints several daemons' replies: one table with a DAEMON
// column, or JSON documents that name their daemon.
func (a *app) printReplies(cmd *cobra.Command, targets []daemonTarget, replies []reply, errs []error) error {
	out := cmd.OutOrStdout()
	if a.json() {
		for i, r := range replies {
			for _, m := range r.docs {
				if err := printDaemonJSON(out, m, targets[i]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var merged *table
	for i, r := range replies {
		if r.table == nil {
			continue
		}
		t := withDaemon(targets[i].name, r.table)
		if merged == nil {
			merged = &table{header: t.header}
		}
		merged.rows = append(merged.rows, t.rows...)
	}
	if merged != nil {
		if err := merged.write(out, !a.noHeaders); err != nil {
			return err
		}
	}
	for i, r := range replies {
		for _, n := range r.notes {
			// Every line names its daemon, so that a note of several
			// lines (a configuration, a plan) can be told apart with grep.
			for _, line := range strings.Split(n, "\n") {
				if _, err := fmt.Fprintf(out, "%s: %s\n", targets[i].name, line); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fleetErr prints one line per failed daemon on stderr and returns an
// error that names them all, or nil if none failed.
func fleetErr(cmd *cobra.Command, targets []daemonTarget, errs []error) error {
	var fe *fleetError
	for i, err := range errs {
		if err == nil {
			continue
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "udpctl: %s: %s\n", targets[i].name, errorLine(err))
		if fe == nil {
			fe = &fleetError{first: err, of: len(targets)}
		}
		fe.failed = append(fe.failed, targets[i].name)
	}
	if fe == nil {
		return nil
	}
	return fe
}

// fleetError is a command that failed on some of the daemons it
// addressed. Its exit code is that of the first failure.
type fleetError struct {
	failed []string
	of     int
	first  error
}

func (e *fleetError) Error() string {
	return fmt.Sprintf("%d of %d daemons failed: %s", len(e.failed), e.of, strings.Join(e.failed, ", "))
}

func (e *fleetError) Unwrap() error { return e.first }

// isFleetError reports whether err is a fleetError, whose per-daemon
// lines are already printed.
func isFleetError(err error) (*fleetError, bool) {
	var fe *fleetError
	ok := errors.As(err, &fe)
	return fe, ok
}
