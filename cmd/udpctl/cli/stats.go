package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

func (a *app) newStatsCmd() *cobra.Command {
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:               "stats [ID]",
		ValidArgsFunction: a.completeOneID,
		Short:             "Show listener counters, once or live (--watch)",
		Long: `Show the counters of listener ID, or of every listener and the daemon's
totals (TOTAL also counts listeners stopped since udpd started).

RECEIVED and SENT count datagrams, BYTES_IN and BYTES_OUT their payload
bytes. A datagram received and not answered is counted in exactly one of
TOO_LARGE (its reply would exceed the largest UDP payload or the listener's
--max-reply-ratio, or it arrived truncated), SEND_ERRORS (the kernel
refused the reply), LOOP_BLOCKED (it came from a responder's port, such as
echo's, or from udpd itself, or from a source caught in an echo loop, so a
reply could start or continue a loop) and RATE_LIMITED (its source network
exceeded the listener's limits). READ_ERRORS counts failed socket reads,
not datagrams. KERNEL_DROPS never reached udpd: the socket's receive queue
was full.

With --watch, follow the WatchStats stream. On a terminal, a table is
redrawn in place with per-second rates; its DROPPED (and DROPS/S) is
TOO_LARGE + SEND_ERRORS + LOOP_BLOCKED + RATE_LIMITED, as in 'udpctl
listeners list'. When the output is not a terminal (piped into a script),
each update is one JSON document (udpd.admin.v1.WatchStatsResponse), as
with -o json; -o text prints each update's time and the table above
instead. Ctrl-C (SIGINT) or SIGTERM ends it (exit 0).`,
		Example: `  udpctl stats
  udpctl stats udp-12000 -o json | jq .total.datagramsSent
  udpctl stats --watch --interval 500ms
  udpctl stats --watch | jq -c '{time, sent: .total.datagramsSent}'`,
		Args: maxArgs(1, "one listener ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			if watch {
				return a.watchStats(cmd, id, interval)
			}
			return a.call(cmd, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				resp, err := c.GetStats(ctx, &adminv1.GetStatsRequest{ListenerId: id})
				if err != nil {
					return err
				}
				r.doc(resp)
				r.rows(statsTable(resp.GetTotal(), resp.GetListeners(), id == ""))
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the counters until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "time between updates with --watch (100ms to 1h)")
	return cmd
}

// watchStats follows the WatchStats stream of every daemon addressed, in
// parallel. With several daemons, JSON documents name their daemon, text
// tables gain a DAEMON column, and the live table shows every daemon.
func (a *app) watchStats(cmd *cobra.Command, id string, interval time.Duration) error {
	targets, err := a.targets(cmd)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	live := !a.json() && isTerminal(out)
	// Piped into a script, a watch speaks JSON unless told -o text.
	asJSON := a.json() || (!live && !cmd.Flags().Changed("output"))
	multi := len(targets) > 1

	type update struct {
		i    int
		resp *adminv1.WatchStatsResponse
	}
	type end struct {
		i   int
		err error // nil: the stream ended normally or was interrupted
	}
	updates := make(chan update)
	ends := make(chan end, len(targets)) // never blocks a stream's goroutine
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	for i, t := range targets {
		go func() {
			err := a.watchOne(ctx, t, id, interval, func(resp *adminv1.WatchStatsResponse) bool {
				select {
				case updates <- update{i: i, resp: resp}:
					return true
				case <-ctx.Done():
					return false
				}
			})
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				err = nil // interrupted: a normal end
			}
			ends <- end{i: i, err: err}
		}()
	}

	prev := make([]*adminv1.WatchStatsResponse, len(targets))
	cur := make([]*adminv1.WatchStatsResponse, len(targets))
	errs := make([]error, len(targets))
	for running := len(targets); running > 0; {
		var u update
		select {
		case e := <-ends:
			errs[e.i] = e.err
			running--
			continue
		case u = <-updates:
		}
		prev[u.i], cur[u.i] = cur[u.i], u.resp
		var err error
		switch {
		case asJSON && multi:
			err = printDaemonJSON(out, u.resp, targets[u.i])
		case asJSON:
			err = printJSON(out, u.resp)
		case live:
			err = drawLive(out, targets, prev, cur, multi)
		default:
			fmt.Fprintf(out, "%s\n", u.resp.GetTime().AsTime().Local().Format(time.RFC3339))
			t := statsTable(u.resp.GetTotal(), u.resp.GetListeners(), id == "")
			if multi {
				t = withDaemon(targets[u.i].name, t)
			}
			err = t.write(out, !a.noHeaders)
		}
		if err != nil {
			return err
		}
	}
	if !multi {
		return errs[0]
	}
	return fleetErr(cmd, targets, errs)
}

// watchOne follows one daemon's WatchStats stream, handing each update to
// emit until the stream ends or emit returns false.
func (a *app) watchOne(ctx context.Context, t daemonTarget, id string, interval time.Duration, emit func(*adminv1.WatchStatsResponse) bool) error {
	conn, ctx, err := a.dial(ctx, t)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Changes only: with many listeners, each message holds the few that
	// changed, which the daemon sends and this process decodes for much
	// less; view keeps the whole picture that is printed.
	stream, err := adminv1.NewListenerServiceClient(conn).WatchStats(ctx, &adminv1.WatchStatsRequest{ListenerId: id, Interval: durationpb.New(interval), ChangesOnly: true})
	if err != nil {
		return explain(t, err)
	}
	var view watchView
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return explain(t, err)
		}
		if !emit(view.apply(resp)) {
			return nil
		}
	}
}

// watchView is the whole picture that a WatchStats stream with
// changes_only gives, message after message.
type watchView struct {
	last   *adminv1.WatchStatsResponse
	legacy bool // a daemon from before changes_only: every message is whole
}

// apply takes the stream's next message and returns the complete view.
func (v *watchView) apply(resp *adminv1.WatchStatsResponse) *adminv1.WatchStatsResponse {
	if v.last == nil && !resp.GetComplete() {
		v.legacy = true // its first message does not say complete
	}
	if v.legacy {
		resp.Complete = true
	}
	v.last = applyChanges(v.last, resp)
	return v.last
}

// applyChanges returns the complete view after the WatchStats message
// resp: resp itself when it is complete, else view with resp's time,
// totals and changed listeners. view is not modified.
func applyChanges(view, resp *adminv1.WatchStatsResponse) *adminv1.WatchStatsResponse {
	if resp.GetComplete() || view == nil {
		resp.Complete = true
		return resp
	}
	out := &adminv1.WatchStatsResponse{Time: resp.GetTime(), Total: resp.GetTotal(), Complete: true, Listeners: slices.Clone(view.GetListeners())}
	for _, l := range resp.GetListeners() {
		i, found := slices.BinarySearchFunc(out.Listeners, l.GetListenerId(), func(x *adminv1.ListenerStats, id string) int {
			return strings.Compare(x.GetListenerId(), id)
		})
		if found {
			out.Listeners[i] = l
		} else {
			out.Listeners = slices.Insert(out.Listeners, i, l)
		}
	}
	return out
}

// withDaemon returns t with a DAEMON column first, holding name.
func withDaemon(name string, t *table) *table {
	d := &table{header: append([]string{"DAEMON"}, t.header...)}
	for _, r := range t.rows {
		d.add(append([]string{name}, r...)...)
	}
	return d
}

// drawLive redraws a terminal in place: for each daemon, rates since its
// previous update and totals.
func drawLive(w io.Writer, targets []daemonTarget, prev, cur []*adminv1.WatchStatsResponse, multi bool) error {
	var all *table
	var at time.Time
	for i := range targets {
		if cur[i] == nil {
			continue
		}
		t := liveTable(prev[i], cur[i])
		if multi {
			t = withDaemon(targets[i].name, t)
		}
		if all == nil {
			all = &table{header: t.header}
		}
		all.rows = append(all.rows, t.rows...)
		if ts := cur[i].GetTime().AsTime(); ts.After(at) {
			at = ts
		}
	}
	// Home the cursor and clear the screen, then draw.
	fmt.Fprintf(w, "\x1b[H\x1b[2Judpd stats at %s (Ctrl-C to stop)\n\n", at.Local().Format("15:04:05"))
	return all.write(w, true)
}

// liveTable is one daemon's rows of the live table: rates since prev and
// totals.
func liveTable(prev, cur *adminv1.WatchStatsResponse) *table {
	secs := 0.0
	if prev != nil {
		secs = cur.GetTime().AsTime().Sub(prev.GetTime().AsTime()).Seconds()
	}
	before := map[string]*adminv1.Stats{}
	if prev != nil {
		for _, l := range prev.GetListeners() {
			before[l.GetListenerId()] = l.GetStats()
		}
		before["\x00total"] = prev.GetTotal()
	}
	t := &table{header: []string{"ID", "IN/S", "OUT/S", "BYTES_IN/S", "BYTES_OUT/S", "DROPS/S", "RECEIVED", "SENT", "DROPPED", "KERNEL_DROPS"}}
	row := func(name, key string, s *adminv1.Stats) {
		p := before[key]
		rate := func(f func(*adminv1.Stats) uint64) string {
			if p == nil || secs <= 0 || f(s) < f(p) {
				return "-"
			}
			return fmt.Sprintf("%.0f", float64(f(s)-f(p))/secs)
		}
		t.add(name,
			rate((*adminv1.Stats).GetDatagramsReceived), rate((*adminv1.Stats).GetDatagramsSent),
			rate((*adminv1.Stats).GetBytesReceived), rate((*adminv1.Stats).GetBytesSent), rate(dropped),
			u64(s.GetDatagramsReceived()), u64(s.GetDatagramsSent()), u64(dropped(s)), u64(s.GetKernelDrops()))
	}
	for _, l := range cur.GetListeners() {
		row(l.GetListenerId(), l.GetListenerId(), l.GetStats())
	}
	row("TOTAL", "\x00total", cur.GetTotal())
	return t
}
