package uppercase

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

func FuzzAppend(f *testing.F) {
	for _, seed := range []string{
		"",
		"hello, world",
		"straße ﬁ ΐ ŉ \u0345 ﬃ",
		"Καλημέρα κόσμε, Привет, мир",
		"\xff", "a\xffb", "\xc3", "x\xe2\x82y", "\xc0\x80", "é\xed\xa0\x80é", "\xf4\x90\x80\x80",
		fill("the quick brown fox ", maxDatagram),
		fill("Grüße, Καλημέρα, Привет ", maxDatagram),
	} {
		f.Add([]byte(seed))
	}
	pythonTable(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out := Append(nil, in)
		if !bytes.Equal(in, orig) {
			t.Fatalf("Append(%q) modified its input to %q", orig, in)
		}
		if want := reference(t, in); !bytes.Equal(out, want) {
			t.Errorf("Append(%q) = %q, want %q", in, out, want)
		}
		if len(out) > MaxExpansion*len(in) {
			t.Errorf("len(Append(%q)) = %d, want <= %d", in, len(out), MaxExpansion*len(in))
		}
		if got, want := invalidRuns(out), invalidRuns(in); got != want {
			t.Errorf("Append(%q) = %q: invalid UTF-8 runs %q, want %q", in, out, got, want)
		}
		if got := Append([]byte("> "), in); !bytes.Equal(got, append([]byte("> "), out...)) {
			t.Errorf("Append(%q, %q) = %q, want %q", "> ", in, got, "> "+string(out))
		}
		// The table-driven fast path against x/text's full mapping.
		if utf8.Valid(in) {
			if want := cases.Upper(language.Und).Bytes(in); !bytes.Equal(out, want) {
				t.Errorf("Append(%q) = %q, want x/text's %q", in, out, want)
			}
		}
		b := bytes.Clone(in)
		if InPlace(b) {
			if !bytes.Equal(b, out) {
				t.Errorf("InPlace(%q) = true, b = %q, want Append's %q", in, b, out)
			}
		} else if !bytes.Equal(b, in) {
			t.Errorf("InPlace(%q) = false but changed b to %q", in, b)
		}
	})
}

// invalidRuns returns the maximal runs of bytes that do not start a valid
// UTF-8 sequence, separated by "|".
func invalidRuns(b []byte) string {
	var runs []string
	var run []byte
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			run = append(run, b[0])
		} else if len(run) > 0 {
			runs = append(runs, string(run))
			run = nil
		}
		b = b[size:]
	}
	if len(run) > 0 {
		runs = append(runs, string(run))
	}
	return strings.Join(runs, "|")
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
