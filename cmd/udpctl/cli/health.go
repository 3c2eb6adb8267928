package cli

import (
	"context"
	"fmt"
	"sync"

	"github.com/spf13/cobra"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func (a *app) newHealthCmd() *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Print udpd's health (grpc.health.v1) for scripts and probes",
		Long: `Ask the admin API's health service (grpc.health.v1.Health/Check) and print
its answer: SERVING, or NOT_SERVING once udpd has begun to shut down.
Health checks need no token.

Exit status 0 when SERVING, 1 when not, 64+N when the call fails with
gRPC code N (78: nothing answers at --admin). -o json prints the
grpc.health.v1.HealthCheckResponse, as grpcurl would.`,
		Example: `  udpctl health
  udpctl health --admin unix:///run/udpd/admin.sock || systemctl restart udpd`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			targets, err := a.targets(cmd)
			if err != nil {
				return err
			}
			resps := make([]*healthpb.HealthCheckResponse, len(targets))
			errs := make([]error, len(targets))
			var wg sync.WaitGroup
			for i, t := range targets {
				wg.Go(func() { resps[i], errs[i] = a.checkHealth(cmd.Context(), t, service) })
			}
			wg.Wait()
			out := cmd.OutOrStdout()
			var notServing []string
			for i, r := range resps {
				if r == nil {
					continue
				}
				var err error
				switch {
				case a.json() && len(targets) > 1:
					err = printDaemonJSON(out, r, targets[i])
				case a.json():
					err = printJSON(out, r)
				case len(targets) > 1:
					_, err = fmt.Fprintf(out, "%s %s\n", targets[i].name, r.GetStatus())
				default:
					_, err = fmt.Fprintln(out, r.GetStatus())
				}
				if err != nil {
					return err
				}
				if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					notServing = append(notServing, targets[i].name)
				}
			}
			if len(targets) == 1 && errs[0] != nil {
				return errs[0]
			}
			if err := fleetErr(cmd, targets, errs); err != nil {
				return err
			}
			if len(notServing) > 0 {
				return failure{fmt.Errorf("not serving: %v", notServing)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "the `service` to ask about (\"\": the whole daemon; or udpd.admin.v1.ListenerService)")
	return cmd
}

// checkHealth asks one daemon's health service within --timeout.
func (a *app) checkHealth(ctx context.Context, t daemonTarget, service string) (*healthpb.HealthCheckResponse, error) {
	conn, ctx, err := a.dial(ctx, t)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.rpcTimeout())
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return r, explain(t, err)
}
