package cli

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

func (a *app) newListenersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "listeners",
		Aliases: []string{"listener", "l"},
		Short:   "Start, stop, rebind, update, list and inspect listeners",
		Long: `Manage udpd's listeners over the admin API. Every change is saved by udpd
before it is acknowledged, and calls are idempotent: starting what already
runs returns it, and 'stop --allow-missing' succeeds for a listener gone.

With -o json each command prints the protojson of the response message
(udpd.admin.v1.StartListenerResponse, ListListenersResponse, …), as grpcurl
would.`,
		Example: `  udpctl listeners start --port 12001
  udpctl listeners list -o json
  udpctl listeners stop udp-12001`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand: start, stop, rebind, update, list or get", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(a.newStartCmd(), a.newStopCmd(), a.newRebindCmd(), a.newUpdateCmd(), a.newListCmd(), a.newGetCmd())
	return cmd
}

// portFlag parses --port: a number from 0 to 65535.
func portFlag(cmd *cobra.Command, port int) (string, error) {
	if !cmd.Flags().Changed("port") {
		return "", usageError{fmt.Errorf("%s needs --port", cmd.CommandPath())}
	}
	if port < 0 || port > 65535 {
		return "", usageError{fmt.Errorf("--port %d: must be from 0 to 65535", port)}
	}
	return strconv.Itoa(port), nil
}

func (a *app) newStartCmd() *cobra.Command {
	var host, name, requestID string
	var port, workers int
	var limits adminv1.Limits
	var burst, bytesBurst uint32
	cmd := &cobra.Command{
		Use:   "start --port PORT [--host HOST] [--name ID]",
		Short: "Start a listener",
		Long: `Start a listener on HOST:PORT (port 0 picks a free port). Without --name
udpd names it after the port ("udp-12000"). Starting a listener that already
runs with the same settings returns it (exit 0).

The limit flags (--rate-limit, …) replace udpd's default limits for this
listener; limits not given are then off.`,
		Example: `  udpctl listeners start --port 12001
  udpctl listeners start --port 12002 --host ::1 --name v6-echo`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := portFlag(cmd, port)
			if err != nil {
				return err
			}
			if workers < 0 {
				return usageError{fmt.Errorf("--workers %d: must not be negative", workers)}
			}
			req := &adminv1.StartListenerRequest{
				Id: name, Address: net.JoinHostPort(host, p), Workers: uint32(workers), RequestId: requestID,
			}
			for _, f := range []string{"rate-limit", "rate-burst", "rate-limit-bytes", "rate-bytes-burst", "rate-limit-loopback", "max-reply-ratio"} {
				if cmd.Flags().Changed(f) {
					limits.Burst, limits.BytesBurst = burst, bytesBurst
					req.Limits = &limits
				}
			}
			return a.call(cmd, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				resp, err := c.StartListener(ctx, req)
				if err != nil {
					return err
				}
				r.listener(resp, resp.GetListener(), a.wide())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", 0, "UDP `port` to listen on (required; 0 picks one)")
	f.StringVar(&host, "host", "127.0.0.1", "`IP` address to listen on (0.0.0.0 for every IPv4 address, :: for every IPv6 address)")
	f.StringVar(&name, "name", "", "listener `id` ([a-z][a-z0-9-]*); default udp-PORT")
	f.IntVar(&workers, "workers", 0, "sockets serving the address (0: udpd's default)")
	f.StringVar(&requestID, "request-id", "", "idempotency `token` (up to 128 letters, digits and -_.:): a repeated request returns the first answer")
	f.Float64Var(&limits.PerSecond, "rate-limit", 0, "answer at most this many datagrams/s per source network (/24, /56)")
	f.Uint32Var(&burst, "rate-burst", 0, "datagrams a source network may have answered at once")
	f.Float64Var(&limits.BytesPerSecond, "rate-limit-bytes", 0, "answer at most this many request bytes/s per source network")
	f.Uint32Var(&bytesBurst, "rate-bytes-burst", 0, "request bytes a source network may have answered at once")
	f.BoolVar(&limits.LimitLoopback, "rate-limit-loopback", false, "apply the limits to loopback sources too")
	f.Float64Var(&limits.MaxReplyRatio, "max-reply-ratio", 0, "refuse replies more than this many times longer than the request")
	return cmd
}

// drainAllowance is how much longer than --timeout a stop or rebind with
// --drain-timeout d may take: udpd answers once the old sockets are
// drained, which takes up to d (its default, 1s, for 0; a d below 0 or
// above 1m it refuses at once). Without the flag d is its default, 1s,
// which is udpd's too.
func drainAllowance(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Second
	case d < 0 || d > time.Minute:
		return 0
	}
	return d
}

func (a *app) newStopCmd() *cobra.Command {
	var drain time.Duration
	var allowMissing bool
	cmd := &cobra.Command{
		Use:   "stop ID...",
		Short: "Stop listeners, answering what they already received",
		Long: `Stop each listener named, one after the other, each after it has answered
what its sockets hold (up to --drain-timeout). A listener that cannot be
stopped does not keep the others running: udpctl goes on, reports each
failure on stderr and exits with the code of the first.`,
		Example: `  udpctl listeners stop udp-12001
  udpctl listeners stop udp-12001 udp-12002
  udpctl listeners stop udp-12001 --allow-missing   # idempotent`,
		Args:              minArgs(1, "a listener ID"),
		ValidArgsFunction: a.completeIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.callWithin(cmd, drainAllowance(drain)*time.Duration(len(args)), func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				return eachID("stop", args, func(id string) error {
					req := &adminv1.StopListenerRequest{Id: id, AllowMissing: allowMissing}
					if cmd.Flags().Changed("drain-timeout") {
						req.DrainTimeout = durationpb.New(drain)
					}
					resp, err := c.StopListener(ctx, req)
					if err != nil {
						return err
					}
					if resp.GetListener() == nil {
						r.doc(resp)
						r.note("listener %q was not running", id)
						return nil
					}
					r.listener(resp, resp.GetListener(), a.wide())
					return nil
				})
			})
		},
	}
	cmd.Flags().DurationVar(&drain, "drain-timeout", time.Second, "how long to answer datagrams already queued")
	cmd.Flags().BoolVar(&allowMissing, "allow-missing", false, "succeed if no such listener runs")
	return cmd
}

func (a *app) newRebindCmd() *cobra.Command {
	var host string
	var port int
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "rebind ID --port PORT [--host HOST]",
		Short: "Move a listener to another address, keeping its id and counters",
		Long: `Move a listener to HOST:PORT. udpd binds the new address first: if that
fails, the listener keeps serving where it was and udpctl exits non-zero.
Without --host the listener keeps its host.`,
		Example:           `  udpctl listeners rebind udp-12001 --port 12002`,
		Args:              exactArgs(1, "a listener ID"),
		ValidArgsFunction: a.completeOneID,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := portFlag(cmd, port)
			if err != nil {
				return err
			}
			return a.callWithin(cmd, drainAllowance(drain), func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				h := host
				if !cmd.Flags().Changed("host") {
					cur, err := c.GetListener(ctx, &adminv1.GetListenerRequest{Id: args[0]})
					if err != nil {
						return err
					}
					h, _, err = net.SplitHostPort(cur.GetListener().GetAddress())
					if err != nil {
						return failure{fmt.Errorf("listener %q has address %q: %w", args[0], cur.GetListener().GetAddress(), err)}
					}
				}
				req := &adminv1.RebindListenerRequest{Id: args[0], Address: net.JoinHostPort(h, p)}
				if cmd.Flags().Changed("drain-timeout") {
					req.DrainTimeout = durationpb.New(drain)
				}
				resp, err := c.RebindListener(ctx, req)
				if err != nil {
					return err
				}
				r.listener(resp, resp.GetListener(), a.wide())
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "new UDP `port` (required)")
	cmd.Flags().StringVar(&host, "host", "", "new `IP` address (default: the current one)")
	cmd.Flags().DurationVar(&drain, "drain-timeout", time.Second, "how long the old address answers what it already received")
	return cmd
}

func (a *app) newListCmd() *cobra.Command {
	var pageSize int32
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List listeners",
		Example: `  udpctl listeners list
  udpctl listeners list -o json | jq -r '.listeners[] | "\(.id) \(.boundAddress)"'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				var all []*adminv1.Listener
				req := &adminv1.ListListenersRequest{PageSize: pageSize}
				for {
					resp, err := c.ListListeners(ctx, req)
					if err != nil {
						return err // no table: a failed list prints nothing but the error
					}
					r.doc(resp)
					all = append(all, resp.GetListeners()...)
					if resp.GetNextPageToken() == "" {
						r.rows(listenersTable(all, a.wide()))
						return nil
					}
					req.PageToken = resp.GetNextPageToken()
				}
			})
		},
	}
	cmd.Flags().Int32Var(&pageSize, "page-size", 0, "listeners per call (0: udpd's default); with -o json each page is one document")
	return cmd
}

func (a *app) newGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID...",
		Short: "Show listeners by id",
		Long: `Show each listener named, in the order given. With -o json each is one
GetListenerResponse document. A listener that does not exist is reported
on stderr; the others are still shown, and udpctl exits with the code of
the first failure (69 NOT_FOUND).`,
		Example: `  udpctl listeners get udp-12000 -o json
  udpctl listeners get udp-12000 udp-12001 -o wide`,
		Args:              minArgs(1, "a listener ID"),
		ValidArgsFunction: a.completeIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.call(cmd, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				return eachID("get", args, func(id string) error {
					resp, err := c.GetListener(ctx, &adminv1.GetListenerRequest{Id: id})
					if err != nil {
						return err
					}
					r.listener(resp, resp.GetListener(), a.wide())
					return nil
				})
			})
		},
	}
}

// eachID runs fn for every id, in order, going on after a failure. It
// returns nil, the one failure, or an idErrors of them all.
func eachID(verb string, ids []string, fn func(id string) error) error {
	var errs idErrors
	for _, id := range ids {
		if err := fn(id); err != nil {
			errs = append(errs, idError{verb: verb, id: id, err: err})
		}
	}
	switch {
	case len(errs) == 0:
		return nil
	case len(ids) == 1:
		return errs[0].err // udpd's message names the id
	case len(errs) == 1:
		return errs[0]
	}
	return errs
}

// idError is a failure for one of several ids; its exit code is err's.
type idError struct {
	verb, id string
	err      error
}

// Error is the failure's line, naming the id unless udpd's message does.
func (e idError) Error() string {
	line := errorLine(e.err)
	if strings.Contains(line, strconv.Quote(e.id)) {
		return line
	}
	return fmt.Sprintf("%s %q: %s", e.verb, e.id, line)
}
func (e idError) Unwrap() error { return e.err }

// idErrors are the failures of one command over several ids, in order;
// the exit code is the first's.
type idErrors []idError

func (e idErrors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\nudpctl: ")
}

func (e idErrors) Unwrap() []error {
	errs := make([]error, len(e))
	for i, err := range e {
		errs[i] = err
	}
	return errs
}

// completeIDs completes listener ids by asking udpd, within a short time
// so that a daemon that does not answer never hangs the shell.
func (a *app) completeIDs(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	targets, err := a.targets(cmd)
	if err != nil || len(targets) != 1 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	conn, ctx, err := a.dial(ctx, targets[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer conn.Close()
	c := adminv1.NewListenerServiceClient(conn)
	var ids []string
	req := &adminv1.ListListenersRequest{}
	for range 10 { // at most 10 pages of ids
		resp, err := c.ListListeners(ctx, req)
		if err != nil {
			break
		}
		for _, l := range resp.GetListeners() {
			if strings.HasPrefix(l.GetId(), prefix) && !slices.Contains(args, l.GetId()) {
				ids = append(ids, l.GetId())
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

// completeOneID is completeIDs for a command that takes one id.
func (a *app) completeOneID(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.completeIDs(cmd, args, prefix)
}

// completionTimeout bounds the admin call behind a completion.
const completionTimeout = 500 * time.Millisecond

// listener adds resp for JSON and its listener as a table row.
func (r *reply) listener(resp proto.Message, l *adminv1.Listener, wide bool) {
	r.doc(resp)
	r.rows(listenersTable([]*adminv1.Listener{l}, wide))
}
