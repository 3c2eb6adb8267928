package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// printJSON writes one document for one response message, like grpcurl:
// protojson (lowerCamelCase names, 64-bit integers as strings) indented by
// two spaces. protojson varies its spacing on purpose; re-indenting makes
// the output byte-stable for scripts that diff it.
func printJSON(w io.Writer, m proto.Message) error {
	return writeJSON(w, m, nil)
}

// printDaemonJSON is printJSON with the daemon that answered as the first
// fields: "daemon", its admin address, and "context", the context it was
// named by (if any). No udpd.admin.v1 message has fields of those names.
func printDaemonJSON(w io.Writer, m proto.Message, t daemonTarget) error {
	head := []string{"daemon", t.admin}
	if t.context != "" {
		head = append(head, "context", t.context)
	}
	return writeJSON(w, m, head)
}

// writeJSON writes m's protojson, re-indented, with the key/value pairs in
// head put first.
func writeJSON(w io.Writer, m proto.Message, head []string) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return failure{err}
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return failure{err}
	}
	if len(head) > 0 {
		var pre bytes.Buffer
		pre.WriteByte('{')
		for i := 0; i < len(head); i += 2 {
			k, _ := json.Marshal(head[i])
			v, _ := json.Marshal(head[i+1])
			if i > 0 {
				pre.WriteByte(',')
			}
			pre.Write(k)
			pre.WriteByte(':')
			pre.Write(v)
		}
		rest := compact.Bytes()[1:] // after the object's '{'
		if rest[0] != '}' {
			pre.WriteByte(',')
		}
		pre.Write(rest)
		compact = pre
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return failure{err}
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// table is rows built once and rendered as an aligned text table with an
// upper-case header; ids come first so awk and cut work.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func listenersTable(ls []*adminv1.Listener) *table {
	t := &table{header: []string{"ID", "ADDRESS", "BOUND", "STATE", "GEN", "WORKERS", "RECEIVED", "SENT", "DROPPED", "AGE"}}
	for _, l := range ls {
		s := l.GetStats()
		t.add(l.GetId(), l.GetAddress(), l.GetBoundAddress(), stateName(l.GetState()),
			u64(l.GetGeneration()), u64(uint64(l.GetWorkers())),
			u64(s.GetDatagramsReceived()), u64(s.GetDatagramsSent()), u64(dropped(s)),
			age(l.GetCreateTime().AsTime()))
	}
	return t
}

func stateName(s adminv1.Listener_State) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STATE_"))
}

// dropped is every datagram received and not answered.
func dropped(s *adminv1.Stats) uint64 {
	return s.GetRepliesTooLarge() + s.GetSendErrors() + s.GetLoopBlocked() + s.GetRateLimited()
}

func statsTable(total *adminv1.Stats, per []*adminv1.ListenerStats, withTotal bool) *table {
	t := &table{header: []string{"ID", "RECEIVED", "SENT", "BYTES_IN", "BYTES_OUT", "TOO_LARGE", "SEND_ERRORS", "LOOP_BLOCKED", "RATE_LIMITED", "READ_ERRORS", "KERNEL_DROPS"}}
	row := func(id string, s *adminv1.Stats) {
		t.add(id, u64(s.GetDatagramsReceived()), u64(s.GetDatagramsSent()), u64(s.GetBytesReceived()),
			u64(s.GetBytesSent()), u64(s.GetRepliesTooLarge()), u64(s.GetSendErrors()),
			u64(s.GetLoopBlocked()), u64(s.GetRateLimited()), u64(s.GetReadErrors()), u64(s.GetKernelDrops()))
	}
	for _, p := range per {
		row(p.GetListenerId(), p.GetStats())
	}
	if withTotal {
		row("TOTAL", total)
	}
	return t
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func age(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 {
		return "-"
	}
	return time.Since(t).Truncate(time.Second).String()
}
