package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/udpd/udpd/service/loadgen"
)

func (a *app) newBenchCmd() *cobra.Command {
	var server string
	var allowRemote bool
	segment := true
	var replyTimeout time.Duration
	cfg := loadgen.Config{}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load a udpd listener and report datagrams/s and round-trip times",
		Long: `Load a udpd listener in a closed loop and report its throughput and the
round-trip times of its replies.

Each of --flows sockets keeps --window datagrams of --size bytes in flight;
each reply, or each datagram that got no reply within --reply-timeout
(default 1s, counted lost), is replaced by the next. Every reply is checked: it must
be exactly the uppercase of its request (a reply that is not is counted
mismatched). The run stops after --duration or --count datagrams,
whichever comes first, or on Ctrl-C, and then waits for the replies still
in flight. --payload utf8 pads the requests with German, Greek and Cyrillic
text instead of ASCII.

bench refuses a --server that is not a loopback address unless
--allow-remote is given: point it only at a server you run.

On a terminal, a progress line is redrawn on stderr. With -o json, one
document is printed at the end: server, payload, flows, window, size,
durationSeconds, sent, received, lost, mismatched, datagramsPerSecond,
rttP50Us, rttP99Us, rttP999Us and rttMaxUs, all numbers as JSON numbers.

Exit status 1 when a reply was mismatched or no reply came at all.`,
		Example: `  udpctl bench
  udpctl bench --duration 30s --flows 4 --window 64 --size 1400
  udpctl bench --count 100000 --payload utf8 -o json | jq .datagramsPerSecond
  udpctl bench --segment=false   # one datagram per send, as ordinary clients`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := benchTarget(server, allowRemote)
			if err != nil {
				return err
			}
			cfg.Server = addr
			cfg.NoSegmentation = !segment
			if cfg.Timeout, err = a.replyTimeout(cmd, replyTimeout); err != nil {
				return err
			}
			if cfg.Payload == "" {
				cfg.Payload = loadgen.ASCII
			}
			if err := cfg.Validate(); err != nil {
				return usageError{fmt.Errorf("bench: %w", err)}
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			live := isTerminal(out) && isTerminal(errOut)
			if live {
				cfg.Progress = func(s loadgen.Snapshot) {
					fmt.Fprintf(errOut, "\r%5.1fs  %.0f datagrams/s  sent %d  received %d  lost %d  mismatched %d\x1b[K",
						s.Elapsed.Seconds(), s.Rate, s.Sent, s.Received, s.Lost, s.Mismatched)
				}
			}
			res, err := loadgen.Run(cmd.Context(), cfg)
			if live {
				fmt.Fprint(errOut, "\r\x1b[K")
			}
			if err != nil {
				return failure{fmt.Errorf("bench %s: %w", addr, err)}
			}
			if a.json() {
				err = printBenchJSON(out, addr, cfg, res)
			} else {
				err = printBench(out, addr, cfg, res)
			}
			if err != nil {
				return err
			}
			switch {
			case res.Mismatched > 0:
				return failure{fmt.Errorf("bench %s: %d of %d replies were not the uppercase of their request", addr, res.Mismatched, res.Received)}
			case res.Received == 0 && res.Refused > 0:
				return failure{fmt.Errorf("bench %s: no replies: connection refused: nothing listens there (is udpd running?)", addr)}
			case res.Received == 0 && res.Sent > 0:
				return failure{fmt.Errorf("bench %s: no replies to %d datagrams", addr, res.Sent)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&replyTimeout, "reply-timeout", time.Second, "how long to wait for each reply before counting it lost")
	f.StringVarP(&server, "server", "s", envOr("UDPCTL_SERVER", "127.0.0.1:12000"), "udpd listener `host:port` (env UDPCTL_SERVER)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send (at most 1h; 0 with --count: until --count)")
	f.Uint64Var(&cfg.Count, "count", 0, "how many datagrams to send (0: as many as --duration allows)")
	f.IntVar(&cfg.Flows, "flows", 8, "sockets sending at once (1 to 1024)")
	f.IntVar(&cfg.Window, "window", 16, "datagrams each socket keeps in flight (1 to 1024)")
	f.IntVar(&cfg.Size, "size", 64, "bytes per datagram ("+strconv.Itoa(loadgen.MinSize)+" to 65507)")
	f.StringVar(&cfg.Payload, "payload", loadgen.ASCII, "padding text: ascii or utf8")
	f.BoolVar(&segment, "segment", true, "to a loopback server, send many datagrams per system call with UDP segmentation offload (false: one per message, like ordinary clients)")
	f.BoolVar(&allowRemote, "allow-remote", false, "allow a --server that is not a loopback address")
	cmd.RegisterFlagCompletionFunc("payload", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{loadgen.ASCII, loadgen.UTF8}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// benchTarget resolves server and refuses an address off this host
// unless allowRemote: a load test must not flood someone else's network.
// It opens no socket.
func benchTarget(server string, allowRemote bool) (netip.AddrPort, error) {
	ua, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return netip.AddrPort{}, usageError{fmt.Errorf("--server %q: %w", server, err)}
	}
	addr := ua.AddrPort()
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().IsValid() || addr.Addr().IsUnspecified() || addr.Port() == 0 {
		return netip.AddrPort{}, usageError{fmt.Errorf("--server %q: want a host and a port", server)}
	}
	if !addr.Addr().IsLoopback() && !allowRemote {
		return netip.AddrPort{}, usageError{fmt.Errorf("--server %q (%s) is not a loopback address; "+
			"bench floods its target, so it needs --allow-remote to load a server you run elsewhere", server, addr.Addr())}
	}
	return addr, nil
}

func printBench(w io.Writer, addr netip.AddrPort, cfg loadgen.Config, res loadgen.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("server", addr.String())
	row("load", fmt.Sprintf("%d flows x %d in flight, %d-byte %s datagrams", cfg.Flows, cfg.Window, cfg.Size, cfg.Payload))
	row("duration", roundDuration(res.Elapsed).String())
	row("datagrams/s", strconv.FormatFloat(res.Rate, 'f', 0, 64))
	row("sent", u64(res.Sent))
	row("received", u64(res.Received))
	row("lost", u64(res.Lost))
	row("mismatched", u64(res.Mismatched))
	if res.Unexpected > 0 {
		row("unexpected", u64(res.Unexpected))
	}
	rtt := func(d time.Duration) string {
		if res.Received == 0 {
			return "-"
		}
		return roundDuration(d).String()
	}
	row("rtt p50", rtt(res.P50))
	row("rtt p99", rtt(res.P99))
	row("rtt p99.9", rtt(res.P999))
	row("rtt max", rtt(res.Max))
	return tw.Flush()
}

// roundDuration keeps three significant digits: 506µs, 2.64ms, 5.001s
// (durations of a second or more keep milliseconds).
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Millisecond)
	}
	unit := time.Duration(1)
	for d >= 1000*unit {
		unit *= 10
	}
	return d.Round(unit)
}

// us is d in microseconds, to the nanosecond.
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// benchResult is the document bench -o json prints; make bench and other
// scripts read these fields.
type benchResult struct {
	Server             string  `json:"server"`
	Payload            string  `json:"payload"`
	Flows              int     `json:"flows"`
	Window             int     `json:"window"`
	Size               int     `json:"size"`
	DurationSeconds    float64 `json:"durationSeconds"`
	Sent               uint64  `json:"sent"`
	Received           uint64  `json:"received"`
	Lost               uint64  `json:"lost"`
	Mismatched         uint64  `json:"mismatched"`
	DatagramsPerSecond float64 `json:"datagramsPerSecond"`
	RTTP50Us           float64 `json:"rttP50Us"`
	RTTP99Us           float64 `json:"rttP99Us"`
	RTTP999Us          float64 `json:"rttP999Us"`
	RTTMaxUs           float64 `json:"rttMaxUs"`
}

func printBenchJSON(w io.Writer, addr netip.AddrPort, cfg loadgen.Config, res loadgen.Result) error {
	doc := benchResult{
		Server:             addr.String(),
		Payload:            cfg.Payload,
		Flows:              cfg.Flows,
		Window:             cfg.Window,
		Size:               cfg.Size,
		DurationSeconds:    math.Round(res.Elapsed.Seconds()*1e3) / 1e3,
		Sent:               res.Sent,
		Received:           res.Received,
		Lost:               res.Lost,
		Mismatched:         res.Mismatched,
		DatagramsPerSecond: math.Round(res.Rate*10) / 10,
		RTTP50Us:           us(res.P50),
		RTTP99Us:           us(res.P99),
		RTTP999Us:          us(res.P999),
		RTTMaxUs:           us(res.Max),
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	_, err := fmt.Fprintf(w, "%s\n", b)
	return err
}
