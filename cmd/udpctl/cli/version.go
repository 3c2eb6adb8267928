package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/udpd/udpd/cmd/internal/buildinfo"
	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// versionTimeout bounds the question to the daemon when --timeout is not
// given: udpctl version must answer at once even when udpd does not.
const versionTimeout = 2 * time.Second

// buildJSON is one build in udpctl version -o json, named like the fields
// of udpd.admin.v1.GetVersionResponse.
type buildJSON struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goVersion"`
}

func (a *app) newVersionCmd() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print udpctl's version and, when it answers, udpd's",
		Long: `Print the version, revision and Go version of udpctl and, when the admin
API answers (GetVersion), of udpd. An unreachable udpd is not an error: the
daemon's line (or the "daemon" member of -o json) is left out, with a note
on stderr.

-o json prints {"client": {...}, "daemon": {...}}, each with version,
revision and goVersion; with several daemons (--admin A,B or contexts),
"daemons" maps each daemon's name to its build instead of "daemon".`,
		Example: `  udpctl version
  udpctl version --client
  udpctl version -o json | jq -r .daemon.version`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := buildinfo.Get()
			var targets []daemonTarget
			if !clientOnly {
				var err error
				if targets, err = a.targets(cmd); err != nil {
					return err
				}
			}
			// Each daemon in the order given; nil where it did not answer.
			builds := make([]*buildJSON, len(targets))
			var wg sync.WaitGroup
			for i, t := range targets {
				wg.Go(func() {
					d, err := a.daemonVersion(cmd.Context(), t)
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "udpctl: no version from %s: %s\n", t.name, errorLine(err))
						return
					}
					builds[i] = &buildJSON{d.GetVersion(), d.GetRevision(), d.GetGoVersion()}
				})
			}
			wg.Wait()
			w := cmd.OutOrStdout()
			if a.json() {
				out := struct {
					Client  buildJSON             `json:"client"`
					Daemon  *buildJSON            `json:"daemon,omitempty"`
					Daemons map[string]*buildJSON `json:"daemons,omitempty"`
				}{Client: buildJSON{c.Version, c.Revision, c.GoVersion}}
				if len(targets) == 1 {
					out.Daemon = builds[0]
				} else {
					for i, b := range builds {
						if b != nil {
							if out.Daemons == nil {
								out.Daemons = map[string]*buildJSON{}
							}
							out.Daemons[targets[i].name] = b
						}
					}
				}
				b, err := json.MarshalIndent(out, "", "  ")
				if err != nil {
					return failure{err}
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			fmt.Fprintf(w, "udpctl %s\n", c)
			for i, d := range builds {
				if d == nil {
					continue
				}
				name := "udpd"
				if len(targets) > 1 {
					name += " " + targets[i].name
				}
				fmt.Fprintf(w, "%s %s\n", name, buildinfo.Info{Version: d.Version, Revision: d.Revision, GoVersion: d.GoVersion})
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print udpctl's version only; do not ask udpd")
	return cmd
}

// daemonVersion asks one udpd for its version within --timeout, or 2 s.
func (a *app) daemonVersion(ctx context.Context, t daemonTarget) (*adminv1.GetVersionResponse, error) {
	if a.timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, versionTimeout)
		defer cancel()
	}
	var resp *adminv1.GetVersionResponse
	err := a.callTarget(ctx, t, 0, func(ctx context.Context, c adminv1.ListenerServiceClient) error {
		var err error
		resp, err = c.GetVersion(ctx, &adminv1.GetVersionRequest{})
		return err
	})
	return resp, err
}
