package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/udpd/udpd/service/config"
)

const example = `# two listeners
listeners:
  - id: echo
    address: 127.0.0.1:12000
    workers: 2
    limits:
      per_second: 100
      burst: 200
      limit_loopback: true
  - id: v6
    address: '[::1]:0'
`

var exampleFile = config.File{Listeners: []config.Listener{
	{ID: "echo", Address: "127.0.0.1:12000", Workers: 2, Limits: &config.Limits{PerSecond: 100, Burst: 200, LimitLoopback: true}},
	{ID: "v6", Address: "[::1]:0"},
}}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want config.File
	}{
		{"yaml", example, exampleFile},
		{"json", `{"listeners": [
			{"id": "echo", "address": "127.0.0.1:12000", "workers": 2,
			 "limits": {"per_second": 100, "burst": 200, "limit_loopback": true}},
			{"id": "v6", "address": "[::1]:0"}]}`, exampleFile},
		{"no listeners", "listeners: []\n", config.File{Listeners: []config.Listener{}}},
		{"version", "config_version: 0123abcd\nlisteners: []\n", config.File{ConfigVersion: "0123abcd", Listeners: []config.Listener{}}},
		{"every limit", `listeners:
- id: a
  address: 0.0.0.0:7000
  limits: {per_second: 1.5, burst: 3, bytes_per_second: 1e6, bytes_burst: 65535, limit_loopback: true, max_reply_ratio: 3}
`, config.File{Listeners: []config.Listener{{ID: "a", Address: "0.0.0.0:7000", Limits: &config.Limits{
			PerSecond: 1.5, Burst: 3, BytesPerSecond: 1e6, BytesBurst: 65535, LimitLoopback: true, MaxReplyRatio: 3}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := config.Parse([]byte(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "the file is empty"},
		{"only a comment", "# nothing\n", "the file is empty"},
		{"no listeners key", "config_version: x\n", "no listeners: list"},
		{"unknown field", "listeners:\n- id: a\n  address: 127.0.0.1:1\n  port: 9\n", "field port not found"},
		{"misspelt limit", "listeners:\n- id: a\n  address: 127.0.0.1:1\n  limits: {persecond: 3}\n", "field persecond not found"},
		{"no id", "listeners:\n- address: 127.0.0.1:1\n", "listeners[0]: id is required"},
		{"no address", "listeners:\n- id: a\n", `listener "a": address is required`},
		{"twice", "listeners:\n- {id: a, address: 127.0.0.1:1}\n- {id: a, address: 127.0.0.1:2}\n", `listener "a": id is listed twice`},
		{"workers not a number", "listeners:\n- {id: a, address: 127.0.0.1:1, workers: two}\n", "cannot unmarshal"},
		{"nan", "listeners:\n- {id: a, address: 127.0.0.1:1, limits: {per_second: .nan}}\n", "limits.per_second must be a finite number"},
		{"two documents", "listeners: []\n---\nlisteners: []\n", "more than one YAML document"},
		{"not a map", "- a\n", "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.in))
			if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q): got %v, want %v saying %q", tc.in, err, config.ErrInvalid, tc.want)
			}
		})
	}
}

// TestFormat pins the printed form: what `udpctl config get -o yaml`
// prints and a file holds.
func TestFormat(t *testing.T) {
	want := `listeners:
  - id: echo
    address: 127.0.0.1:12000
    workers: 2
    limits:
      per_second: 100
      burst: 200
      limit_loopback: true
  - id: v6
    address: '[::1]:0'
`
	if got := string(config.Format(exampleFile)); got != want {
		t.Errorf("Format:\n%s\nwant:\n%s", got, want)
	}
	if got := string(config.Format(config.File{})); got != "listeners: []\n" {
		t.Errorf("Format of no listeners: %q, want %q", got, "listeners: []\n")
	}
	for name, b := range map[string][]byte{"yaml": config.Format(exampleFile), "json": config.FormatJSON(exampleFile)} {
		back, err := config.Parse(b)
		if err != nil || !cmp.Equal(back, exampleFile) {
			t.Errorf("Parse(Format %s): %+v, %v, want the file back", name, back, err)
		}
	}
}

// FuzzRoundTrip: whatever Parse accepts, Format prints so that Parse
// reads the same File back, and printing that again gives the same bytes.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{
		example,
		"listeners: []\n",
		`{"listeners": [{"id": "a", "address": "x", "limits": {"max_reply_ratio": 1e300}}]}`,
		"config_version: \"007\"\nlisteners:\n- {id: \"y\", address: 'yes', workers: -3, limits: {}}\n",
		"listeners:\n- id: \"a:b # c\"\n  address: \"\\ttab\"\n  limits: {per_second: -0.0, burst: 9223372036854775807}\n",
		"listeners: [{id: '&x', address: '*x'}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Parse(data)
		if err != nil {
			return
		}
		out := config.Format(file)
		back, err := config.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(f)) failed: %v\ninput %q\nprinted:\n%s", err, data, out)
		}
		if diff := cmp.Diff(file, back); diff != "" {
			t.Fatalf("round trip changed the file (-first +second):\n%s\nprinted:\n%s", diff, out)
		}
		if again := config.Format(back); string(again) != string(out) {
			t.Fatalf("Format is not canonical:\n%s\nthen:\n%s", out, again)
		}
		js, err := config.Parse(config.FormatJSON(file))
		if err != nil || !cmp.Equal(js, file) {
			t.Fatalf("JSON round trip: %+v, %v, want %+v", js, err, file)
		}
	})
}
