package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// maxPayload is the largest UDP payload over IPv4.
const maxPayload = 65507

// prompt is the textbook client's, shown only when stdin is a terminal.
const prompt = "Input lowercase sentence: "

func (a *app) newSendCmd() *cobra.Command {
	var server string
	var retries int
	var replyTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "send [TEXT...]",
		Short: "Send text in one datagram and print the uppercase reply",
		Long: `Send TEXT (several arguments are joined by spaces, like echo) in one UDP
datagram to a udpd listener and print the reply.

With no TEXT, read standard input and send each line as one datagram,
printing each reply (the textbook prompt is shown only on a terminal).

UDP may lose a datagram: each is sent up to 1+--retries times, waiting
--reply-timeout for a reply each time. Without a reply udpctl exits 1 (and
says so when udpd counted the reply as too large, if its admin API answers).

With -o json each datagram is one document: server, request, reply
(replyBytes, base64, when the reply is not UTF-8), attempts, rtt (a Go
duration) and rttMicros (a number, like bench's).`,
		Example: `  udpctl send "hello, world"
  udpctl send --server '[::1]:12000' straße
  printf 'one\ntwo\n' | udpctl send -o json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if retries < 0 {
				return usageError{fmt.Errorf("--retries %d: must not be negative", retries)}
			}
			timeout, err := a.replyTimeout(cmd, replyTimeout)
			if err != nil {
				return err
			}
			c, err := dialUDP(server, timeout, retries)
			if err != nil {
				return err
			}
			defer c.close()
			c.tooLarge = func() (uint64, bool) { return a.repliesTooLarge(cmd, c.conn.RemoteAddr().String()) }
			stop := context.AfterFunc(cmd.Context(), c.interrupt)
			defer stop()
			out := cmd.OutOrStdout()
			if len(args) > 0 {
				return a.sendOne(cmd.Context(), c, out, []byte(strings.Join(args, " ")))
			}
			return a.sendLines(cmd.Context(), c, a.stdin, out, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&server, "server", "s", envOr("UDPCTL_SERVER", "127.0.0.1:12000"), "udpd listener `host:port` (env UDPCTL_SERVER)")
	cmd.Flags().IntVar(&retries, "retries", 2, "times to resend a datagram that got no reply")
	cmd.Flags().DurationVar(&replyTimeout, "reply-timeout", time.Second, "how long to wait for each reply")
	return cmd
}

// replyTimeout is send's and bench's --reply-timeout. Before it existed,
// the global --timeout meant it for these commands; it still does when
// --reply-timeout is not given, with a warning.
func (a *app) replyTimeout(cmd *cobra.Command, d time.Duration) (time.Duration, error) {
	f := cmd.Flags()
	if f.Changed("timeout") && !f.Changed("reply-timeout") {
		fmt.Fprintf(cmd.ErrOrStderr(), "udpctl: --timeout for %s is deprecated: it is for admin calls; use --reply-timeout\n", cmd.Name())
		d = a.timeout
	}
	if d <= 0 {
		return 0, usageError{fmt.Errorf("--reply-timeout %v: must be positive", d)}
	}
	return d, nil
}

func (a *app) sendLines(ctx context.Context, c *udpClient, in io.Reader, out, errOut io.Writer) error {
	interactive := isTerminal(in)
	r := bufio.NewReader(in)
	for {
		if interactive {
			fmt.Fprint(errOut, prompt)
		}
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			if serr := a.sendOne(ctx, c, out, line); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return failure{fmt.Errorf("read stdin: %w", err)}
		}
	}
}

func (a *app) sendOne(ctx context.Context, c *udpClient, out io.Writer, req []byte) error {
	if len(req) > maxPayload {
		return failure{fmt.Errorf("message is %d bytes; the largest UDP payload is %d", len(req), maxPayload)}
	}
	start := time.Now()
	reply, attempts, err := c.exchange(ctx, req)
	if err != nil {
		return err
	}
	if !a.json() {
		_, err = fmt.Fprintf(out, "%s\n", reply)
		return err
	}
	doc := sendResult{
		Server:   c.server,
		Request:  string(req),
		Reply:    string(reply),
		Attempts: attempts,
	}
	rtt := time.Since(start)
	doc.RTT, doc.RTTMicros = rtt.String(), rtt.Microseconds()
	if !utf8.Valid(reply) {
		doc.ReplyBytes = reply // base64: the text field cannot hold invalid UTF-8
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// sendResult is the JSON document udpctl send -o json prints per datagram.
type sendResult struct {
	Server     string `json:"server"`
	Request    string `json:"request"`
	Reply      string `json:"reply"`
	ReplyBytes []byte `json:"replyBytes,omitempty"`
	Attempts   int    `json:"attempts"`
	RTT        string `json:"rtt"`       // a Go duration, "1.234ms"
	RTTMicros  int64  `json:"rttMicros"` // the same in µs, a number
}

// udpClient sends datagrams from one connected socket, so the kernel
// drops datagrams from anyone but the server and reports ICMP errors.
type udpClient struct {
	server  string
	conn    *net.UDPConn
	timeout time.Duration
	retries int
	buf     []byte
	// tooLarge, when set, reads udpd's replies_too_large counter of the
	// listener at server (ok false when it cannot), to explain a reply
	// that never came.
	tooLarge func() (n uint64, ok bool)
}

func dialUDP(server string, timeout time.Duration, retries int) (*udpClient, error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server %q: %w", server, err)}
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, failure{fmt.Errorf("send to %s: %w", server, err)}
	}
	return &udpClient{server: server, conn: conn, timeout: timeout, retries: retries, buf: make([]byte, 1<<18)}, nil
}

func (c *udpClient) close() { c.conn.Close() }

// interrupt ends a wait for a reply at once (Ctrl-C).
func (c *udpClient) interrupt() { c.conn.SetReadDeadline(time.Unix(1, 0)) }

// maxDiscard bounds how many queued datagrams discard drops at once.
const maxDiscard = 1024

// exchange sends req and waits for a reply, resending on timeout. Any
// reply to an attempt of req is its answer, even one that came after its
// attempt timed out; a reply still queued from an earlier request is not,
// and is discarded first.
func (c *udpClient) exchange(ctx context.Context, req []byte) ([]byte, int, error) {
	c.discard()
	var last error
	var before uint64
	counted := false
	attempts := 1 + c.retries
	for i := 1; i <= attempts; i++ {
		if ctx.Err() != nil {
			return nil, i, failure{fmt.Errorf("interrupted: %w", ctx.Err())}
		}
		if _, err := c.conn.Write(req); err != nil {
			last = err
			continue
		}
		c.conn.SetReadDeadline(time.Now().Add(c.timeout))
		n, err := c.conn.Read(c.buf)
		if err == nil {
			return c.buf[:n], i, nil
		}
		if ctx.Err() != nil {
			return nil, i, failure{fmt.Errorf("interrupted: %w", ctx.Err())}
		}
		last = err
		if i == 1 && isTimeout(err) && c.tooLarge != nil {
			// Slow path only: ask udpd once the first attempt is lost.
			before, counted = c.tooLarge()
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			// Nothing listens there: the next try would be refused as
			// fast; wait a little in case udpd is just starting.
			time.Sleep(min(c.timeout, 100*time.Millisecond))
		}
	}
	why := fmt.Sprintf("no reply within %v", c.timeout)
	if errors.Is(last, syscall.ECONNREFUSED) {
		why = "connection refused: nothing listens there (is udpd running?)"
	} else if !isTimeout(last) {
		why = last.Error()
	} else if counted {
		if after, ok := c.tooLarge(); ok && after > before {
			why = fmt.Sprintf("udpd dropped the reply as too large (the listener's replies_too_large rose by %d): "+
				"the uppercase would be longer than the largest UDP payload or than the listener's max_reply_ratio allows", after-before)
		} else if ok && after > 0 && attempts == 1 {
			why += fmt.Sprintf(" (udpd has dropped %d replies as too large on this listener: see replies_too_large; retry with --retries to know)", after)
		}
	}
	return nil, attempts, failure{fmt.Errorf("no reply from %s after %d attempts: %s", c.server, attempts, why)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isTerminal reports whether f (stdin or stdout) is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// repliesTooLarge reads the replies_too_large counter of the listener that
// serves addr, from the one daemon addressed, within a second. A listener
// on a wildcard address serves addr when the port matches.
func (a *app) repliesTooLarge(cmd *cobra.Command, addr string) (uint64, bool) {
	want, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0, false
	}
	targets, err := a.targets(cmd)
	if err != nil || len(targets) != 1 {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), time.Second)
	defer cancel()
	conn, ctx, err := a.dial(ctx, targets[0])
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	c := adminv1.NewListenerServiceClient(conn)
	req := &adminv1.ListListenersRequest{}
	for range 10 {
		resp, err := c.ListListeners(ctx, req)
		if err != nil {
			return 0, false
		}
		for _, l := range resp.GetListeners() {
			bound, err := netip.ParseAddrPort(l.GetBoundAddress())
			if err != nil || bound.Port() != want.Port() {
				continue
			}
			if bound.Addr().Unmap() == want.Addr().Unmap() || bound.Addr().IsUnspecified() {
				return l.GetStats().GetRepliesTooLarge(), true
			}
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	return 0, false
}
