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
	if tail := emptyLists(m); tail != "" {
		c := compact.Bytes()
		body := c[1 : len(c)-1] // between the object's braces
		sep := ","
		if len(body) == 0 {
			sep = ""
		}
		compact = *bytes.NewBufferString("{" + string(body) + sep + tail + "}")
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

// emptyLists is `"name":[]` for each top-level list field of m that is
// empty, comma-separated. protojson (and grpcurl) leave such fields out;
// udpctl prints them, so that jq's .listeners[] works on an empty list
// too instead of failing on null.
func emptyLists(m proto.Message) string {
	var parts []string
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.IsList() && m.ProtoReflect().Get(f).List().Len() == 0 {
			parts = append(parts, strconv.Quote(f.JSONName())+":[]")
		}
	}
	return strings.Join(parts, ",")
}

// table is rows built once and rendered as an aligned text table with an
// upper-case header; ids come first so awk and cut work.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write renders the table, with its header row unless header is false
// (--no-headers).
func (t *table) write(w io.Writer, header bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	}
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// listenersTable is one row per listener; wide (-o wide) adds every drop
// counter, the byte counters and the limits.
func listenersTable(ls []*adminv1.Listener, wide bool) *table {
	t := &table{header: []string{"ID", "ADDRESS", "BOUND", "STATE", "GEN", "WORKERS", "RECEIVED", "SENT", "DROPPED", "AGE"}}
	if wide {
		t.header = append(t.header, "BYTES_IN", "BYTES_OUT", "TOO_LARGE", "SEND_ERRORS", "LOOP_BLOCKED", "RATE_LIMITED", "READ_ERRORS", "KERNEL_DROPS", "LIMITS")
	}
	for _, l := range ls {
		s := l.GetStats()
		row := []string{l.GetId(), l.GetAddress(), l.GetBoundAddress(), stateName(l.GetState()),
			u64(l.GetGeneration()), u64(uint64(l.GetWorkers())),
			u64(s.GetDatagramsReceived()), u64(s.GetDatagramsSent()), u64(dropped(s)),
			age(l.GetCreateTime().AsTime())}
		if wide {
			row = append(row, u64(s.GetBytesReceived()), u64(s.GetBytesSent()), u64(s.GetRepliesTooLarge()),
				u64(s.GetSendErrors()), u64(s.GetLoopBlocked()), u64(s.GetRateLimited()),
				u64(s.GetReadErrors()), u64(s.GetKernelDrops()), limitsText(l.GetLimits()))
		}
		t.add(row...)
	}
	return t
}

// limitsText sums up a listener's limits in one cell: "-" when none.
func limitsText(l *adminv1.Limits) string {
	var parts []string
	if v := l.GetPerSecond(); v > 0 {
		parts = append(parts, fmt.Sprintf("%g/s(burst %d)", v, l.GetBurst()))
	}
	if v := l.GetBytesPerSecond(); v > 0 {
		parts = append(parts, fmt.Sprintf("%gB/s(burst %d)", v, l.GetBytesBurst()))
	}
	if l.GetLimitLoopback() {
		parts = append(parts, "loopback")
	}
	if v := l.GetMaxReplyRatio(); v > 0 {
		parts = append(parts, fmt.Sprintf("ratio<=%g", v))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
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
