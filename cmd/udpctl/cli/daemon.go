package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

func (a *app) newDaemonCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Manage the udpd process itself",
		Long: `Manage the udpd process itself (DaemonService): 'udpctl daemon upgrade'
hands it over to a new process of its binary without losing a datagram.`,
		Example: `  udpctl daemon upgrade`,
		Args:    noArgs,
	}
	cmd.AddCommand(a.newUpgradeCmd())
	return cmd
}

func (a *app) newUpgradeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Replace udpd with a new process of its binary, losing nothing",
		Long: `Replace the running udpd with a new process of the binary at its path
(install the new binary there first), without losing or refusing a
datagram: the new process inherits every listener socket with what it
holds, the admin and metrics listeners and the state file's lock, and
reports ready; then the old process stops reading, hands over its counters
(totals, listener ids and generations continue), ends 'stats --watch'
streams (they say to reconnect) and exits. SIGUSR2 to udpd does the same.

If the new binary fails to start, exits before it is ready, or is not
ready within --upgrade-timeout, it is killed and the old process serves on
as if nothing happened; udpctl then exits 64+9 (FAILED_PRECONDITION,
reason UPGRADE_FAILED) with the reason. Listener changes made during the
upgrade fail with UNAVAILABLE (reason UPGRADING). With several daemons
(--admin A,B or contexts) they are upgraded one after the other, and the
first failure stops the rest.`,
		Example: `  udpctl daemon upgrade
  udpctl --admin unix:///run/udpd/admin.sock daemon upgrade --upgrade-timeout 1m`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := a.targets(cmd)
			if err != nil {
				return err
			}
			// One daemon after the other, stopping at the first failure.
			for _, t := range targets {
				resp, err := a.upgrade(cmd.Context(), t, timeout)
				if err != nil {
					return explain(t, err)
				}
				if a.json() {
					if len(targets) > 1 {
						err = printDaemonJSON(cmd.OutOrStdout(), resp, t)
					} else {
						err = printJSON(cmd.OutOrStdout(), resp)
					}
				} else {
					prefix := ""
					if len(targets) > 1 {
						prefix = t.name + ": "
					}
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%supgraded: pid %d handed %d listeners to pid %d, serving after %v\n",
						prefix, resp.GetOldPid(), resp.GetListeners(), resp.GetNewPid(), resp.GetReadyAfter().AsDuration().Round(time.Millisecond))
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "upgrade-timeout", 30*time.Second, "how long the new process has to become ready (at most 5m)")
	return cmd
}

// upgrade asks one udpd to upgrade; the call lasts as long as the new
// process may take, and the usual call timeout more.
func (a *app) upgrade(ctx context.Context, t daemonTarget, timeout time.Duration) (*adminv1.UpgradeResponse, error) {
	conn, ctx, err := a.dial(ctx, t)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.rpcTimeout()+timeout)
	defer cancel()
	req := &adminv1.UpgradeRequest{}
	if timeout > 0 {
		req.Timeout = durationpb.New(timeout)
	}
	return adminv1.NewDaemonServiceClient(conn).Upgrade(ctx, req)
}
