package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/config"
)

// ExitChanged is the exit code of apply and diff when the configuration
// changed, or would change: 0 means the daemon already ran the file.
const ExitChanged = 3

// errChanged ends apply or diff with ExitChanged, printing nothing more.
var errChanged = errors.New("the configuration changed")

func (a *app) newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "config",
		Short:   "Show the running configuration in the configuration file's format",
		Example: `  udpctl config get`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand: get", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "get",
		Short: "Print the running configuration as a configuration file",
		Long: `Print udpd's running configuration (GetConfig) in the configuration file's
format: YAML, the format 'udpctl apply -f' and 'udpd --config' read, so get,
edit and apply round-trip. -o text and -o yaml print the same. The file
carries config_version: applying it fails with CONFIG_VERSION_MISMATCH if
the daemon changed since, instead of undoing that change; delete the line
to apply regardless. -o json prints the GetConfigResponse as protojson,
like every other command.`,
		Example: `  udpctl config get > udpd.yaml
  $EDITOR udpd.yaml && udpctl apply -f udpd.yaml --prune`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				resp, err := c.GetConfig(ctx, &adminv1.GetConfigRequest{})
				if err != nil {
					return err
				}
				r.doc(resp)
				r.note("%s", strings.TrimSuffix(string(config.Format(fileFromProto(resp))), "\n"))
				return nil
			})
		},
	})
	return cmd
}

func (a *app) newApplyCmd() *cobra.Command {
	var file string
	var prune, dryRun bool
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--prune] [--dry-run]",
		Short: "Make udpd run the listeners a configuration file lists",
		Long: `Send the configuration in FILE (YAML or JSON; - reads stdin) to udpd's
ApplyConfig, which converges in one step: new listeners and new addresses
are bound first, and if any bind fails nothing changes. Then changed limits
apply in place and, with --prune, listeners the file does not list drain
and stop. Listeners the file lists unchanged keep their sockets and
counters.

It prints the plan: "+" a listener started, "~" one updated in place or
moved (with each field from → to), "-" one stopped. Exit 0 when nothing
changed, 3 when something did (so a pipeline can tell), or an error code.`,
		Example: `  udpctl apply -f udpd.yaml --prune
  udpctl config get | sed 's/per_second: 100/per_second: 10/' | udpctl apply -f -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.applyFile(cmd, file, prune, dryRun, drain)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the configuration `file` (- for stdin)")
	cmd.Flags().BoolVar(&prune, "prune", false, "stop the listeners the file does not list")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing (as diff does)")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 0, "how long moved and stopped listeners answer what they hold (default 1s)")
	return cmd
}

func (a *app) newDiffCmd() *cobra.Command {
	var file string
	var prune bool
	cmd := &cobra.Command{
		Use:   "diff -f FILE [--prune]",
		Short: "Show what applying a configuration file would change",
		Long: `Print the plan 'udpctl apply -f FILE' would carry out, changing nothing
(ApplyConfig with dry_run): "+" start, "~" update or move, "-" stop (with
--prune, the listeners the file does not list). Exit 0 when the daemon
already runs the file, 3 when something would change.`,
		Example: `  udpctl diff -f udpd.yaml --prune || [ $? -eq 3 ]`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.applyFile(cmd, file, prune, true, 0)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the configuration `file` (- for stdin)")
	cmd.Flags().BoolVar(&prune, "prune", false, "show the listeners the file does not list as stopped")
	return cmd
}

// applyFile is apply and diff: read and check the file, then apply it on
// every daemon addressed.
func (a *app) applyFile(cmd *cobra.Command, file string, prune, dryRun bool, drain time.Duration) error {
	if file == "" {
		return usageError{fmt.Errorf("%s needs -f FILE", cmd.CommandPath())}
	}
	if drain < 0 || drain > time.Minute {
		return usageError{fmt.Errorf("--drain-timeout %v: must be from 0 to 1m", drain)}
	}
	f, err := a.readConfig(file)
	if err != nil {
		return failure{err}
	}
	req := applyRequest(f, prune, dryRun)
	if drain > 0 {
		req.DrainTimeout = durationpb.New(drain)
	}
	var changed atomic.Bool
	err = a.callWithin(cmd, drain, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
		resp, err := c.ApplyConfig(ctx, req)
		if err != nil {
			return err
		}
		if len(resp.GetChanges()) > 0 {
			changed.Store(true)
		}
		r.doc(resp)
		planNotes(r, resp)
		return nil
	})
	if err != nil {
		return err
	}
	if changed.Load() {
		return errChanged
	}
	return nil
}

func (a *app) readConfig(file string) (config.File, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(a.stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return config.File{}, err
	}
	f, err := config.Parse(data)
	if err != nil {
		return config.File{}, fmt.Errorf("%s: %w", file, err)
	}
	return f, nil
}

// applyRequest is the ApplyConfig request for f.
func applyRequest(f config.File, prune, dryRun bool) *adminv1.ApplyConfigRequest {
	req := &adminv1.ApplyConfigRequest{Prune: prune, DryRun: dryRun, ConfigVersion: f.ConfigVersion}
	for _, l := range f.Listeners {
		lc := &adminv1.ListenerConfig{Id: l.ID, Address: l.Address, Workers: uint32(max(l.Workers, 0))}
		if l.Workers < 0 {
			lc.Workers = 1 << 31 // out of range on purpose: udpd names the field
		}
		if m := l.Limits; m != nil {
			lc.Limits = &adminv1.Limits{
				PerSecond: m.PerSecond, Burst: clampU32(m.Burst), BytesPerSecond: m.BytesPerSecond,
				BytesBurst: clampU32(m.BytesBurst), LimitLoopback: m.LimitLoopback, MaxReplyRatio: m.MaxReplyRatio,
			}
		}
		req.Listeners = append(req.Listeners, lc)
	}
	return req
}

// clampU32 keeps an out-of-range count out of range, so udpd rejects it
// by name rather than udpctl wrapping it into range.
func clampU32(n int) uint32 {
	switch {
	case n < 0:
		return 1<<32 - 1
	case n > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(n)
}

// fileFromProto is the configuration file of a GetConfig answer.
func fileFromProto(resp *adminv1.GetConfigResponse) config.File {
	f := config.File{ConfigVersion: resp.GetConfigVersion(), Listeners: []config.Listener{}}
	for _, l := range resp.GetListeners() {
		cl := config.Listener{ID: l.GetId(), Address: l.GetAddress(), Workers: int(l.GetWorkers())}
		if m := l.GetLimits(); m != nil {
			cl.Limits = &config.Limits{
				PerSecond: m.GetPerSecond(), Burst: int(m.GetBurst()), BytesPerSecond: m.GetBytesPerSecond(),
				BytesBurst: int(m.GetBytesBurst()), LimitLoopback: m.GetLimitLoopback(), MaxReplyRatio: m.GetMaxReplyRatio(),
			}
		}
		f.Listeners = append(f.Listeners, cl)
	}
	return f
}

// planNotes prints a plan, one line per listener, then a summary:
//
//   - new    address=127.0.0.1:9000 workers=2
//     ~ keep   limits.per_second: 0 → 100
//   - old    127.0.0.1:9001
//     1 to start, 1 to update, 1 to stop (dry run: nothing changed)
func planNotes(r *reply, resp *adminv1.ApplyConfigResponse) {
	width := 0
	for _, c := range resp.GetChanges() {
		width = max(width, len(c.GetListenerId()))
	}
	var starts, updates, stops int
	for _, c := range resp.GetChanges() {
		var what string
		switch c.GetAction() {
		case adminv1.ConfigChange_ACTION_START:
			starts++
			what = describeConfig(c.GetConfig())
			r.note("+ %-*s  %s", width, c.GetListenerId(), what)
		case adminv1.ConfigChange_ACTION_UPDATE:
			updates++
			var parts []string
			for _, f := range c.GetFields() {
				parts = append(parts, fmt.Sprintf("%s: %s → %s", f.GetField(), f.GetFrom(), f.GetTo()))
			}
			r.note("~ %-*s  %s", width, c.GetListenerId(), strings.Join(parts, ", "))
		case adminv1.ConfigChange_ACTION_STOP:
			stops++
			r.note("- %-*s  %s", width, c.GetListenerId(), c.GetConfig().GetAddress())
		}
	}
	switch {
	case len(resp.GetChanges()) == 0:
		r.note("no changes")
	case resp.GetDryRun():
		r.note("%d to start, %d to update, %d to stop (dry run: nothing changed)", starts, updates, stops)
	default:
		r.note("%d started, %d updated, %d stopped", starts, updates, stops)
	}
}

// describeConfig is a listener's configuration as key=value pairs.
func describeConfig(l *adminv1.ListenerConfig) string {
	parts := []string{"address=" + l.GetAddress()}
	if l.GetWorkers() != 0 {
		parts = append(parts, fmt.Sprintf("workers=%d", l.GetWorkers()))
	}
	if m := l.GetLimits(); m != nil {
		for _, kv := range []struct {
			k   string
			v   any
			set bool
		}{
			{"per_second", m.GetPerSecond(), m.GetPerSecond() != 0},
			{"burst", m.GetBurst(), m.GetBurst() != 0},
			{"bytes_per_second", m.GetBytesPerSecond(), m.GetBytesPerSecond() != 0},
			{"bytes_burst", m.GetBytesBurst(), m.GetBytesBurst() != 0},
			{"limit_loopback", m.GetLimitLoopback(), m.GetLimitLoopback()},
			{"max_reply_ratio", m.GetMaxReplyRatio(), m.GetMaxReplyRatio() != 0},
		} {
			if kv.set {
				parts = append(parts, fmt.Sprintf("limits.%s=%v", kv.k, kv.v))
			}
		}
	}
	return strings.Join(parts, " ")
}

// limitFlagFields maps udpctl's limit flags to UpdateListener's mask.
var limitFlagFields = []struct{ flag, field string }{
	{"rate-limit", "limits.per_second"},
	{"rate-burst", "limits.burst"},
	{"rate-limit-bytes", "limits.bytes_per_second"},
	{"rate-bytes-burst", "limits.bytes_burst"},
	{"rate-limit-loopback", "limits.limit_loopback"},
	{"max-reply-ratio", "limits.max_reply_ratio"},
}

func (a *app) newUpdateCmd() *cobra.Command {
	var limits adminv1.Limits
	var burst, bytesBurst uint32
	var version string
	cmd := &cobra.Command{
		Use:               "update ID [--rate-limit N] [--rate-burst N] [--max-reply-ratio R] …",
		ValidArgsFunction: a.completeOneID,
		Short:             "Change a running listener's limits in place",
		Long: `Change the limits of a running listener (UpdateListener) without
restarting it: its sockets keep serving and its counters keep counting;
the next datagram follows the new limits. Only the limit flags given
change; the others keep their values. A changed rate limit starts with
fresh token buckets.`,
		Example: `  udpctl listeners update udp-12000 --rate-limit 10 --rate-burst 20 --rate-limit-loopback
  udpctl listeners update udp-12000 --rate-limit 0`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &adminv1.UpdateListenerRequest{Id: args[0], Limits: &limits, ConfigVersion: version, UpdateMask: &fieldmaskpb.FieldMask{}}
			limits.Burst, limits.BytesBurst = burst, bytesBurst
			for _, f := range limitFlagFields {
				if cmd.Flags().Changed(f.flag) {
					req.UpdateMask.Paths = append(req.UpdateMask.Paths, f.field)
				}
			}
			if len(req.UpdateMask.Paths) == 0 {
				return usageError{fmt.Errorf("%s needs at least one limit flag (--rate-limit, --rate-burst, …)", cmd.CommandPath())}
			}
			return a.call(cmd, func(ctx context.Context, c adminv1.ListenerServiceClient, r *reply) error {
				resp, err := c.UpdateListener(ctx, req)
				if err != nil {
					return err
				}
				r.listener(resp, resp.GetListener(), true)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Float64Var(&limits.PerSecond, "rate-limit", 0, "answer at most this many datagrams/s per source network (/24, /56); 0: no limit")
	f.Uint32Var(&burst, "rate-burst", 0, "datagrams a source network may have answered at once")
	f.Float64Var(&limits.BytesPerSecond, "rate-limit-bytes", 0, "answer at most this many request bytes/s per source network; 0: no limit")
	f.Uint32Var(&bytesBurst, "rate-bytes-burst", 0, "request bytes a source network may have answered at once")
	f.BoolVar(&limits.LimitLoopback, "rate-limit-loopback", false, "apply the limits to loopback sources too (=false exempts them again)")
	f.Float64Var(&limits.MaxReplyRatio, "max-reply-ratio", 0, "refuse replies more than this many times longer than the request; 0: off")
	f.StringVar(&version, "config-version", "", "fail with CONFIG_VERSION_MISMATCH unless the configuration still has this `version` (udpctl config get)")
	return cmd
}
