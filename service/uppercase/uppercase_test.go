package uppercase

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

var (
	tableOnce sync.Once
	table     map[rune]string
	tableErr  error
	// asciiTable holds table's ASCII entries, sparing reference a map lookup
	// per byte on the fuzzer's large, mostly ASCII inputs.
	asciiTable [utf8.RuneSelf]string
)

// pythonTable returns testdata/upper.txt, Python's str.upper() for every code
// point it changes, loaded once so that fuzzing stays fast.
func pythonTable(tb testing.TB) map[rune]string {
	tb.Helper()
	tableOnce.Do(func() {
		table, tableErr = loadTable("testdata/upper.txt")
		for r := range asciiTable {
			asciiTable[r] = string(rune(r))
			if up, ok := table[rune(r)]; ok {
				asciiTable[r] = up
			}
		}
	})
	if tableErr != nil {
		tb.Fatal(tableErr)
	}
	return table
}

func loadTable(name string) (map[rune]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[rune]string)
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		if strings.HasPrefix(s.Text(), "#") {
			continue
		}
		var cps []rune
		for _, field := range strings.Fields(s.Text()) {
			cp, err := strconv.ParseUint(field, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, line, err)
			}
			cps = append(cps, rune(cp))
		}
		if len(cps) < 2 {
			return nil, fmt.Errorf("%s:%d: want a code point and its mapping", name, line)
		}
		m[cps[0]] = string(cps[1:])
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// reference is the slow, obviously correct mapping: Python's table per rune,
// each byte that does not start a valid UTF-8 sequence copied through.
func reference(tb testing.TB, src []byte) []byte {
	tb.Helper()
	m := pythonTable(tb)
	out := make([]byte, 0, len(src))
	for len(src) > 0 {
		if src[0] < utf8.RuneSelf {
			out = append(out, asciiTable[src[0]]...)
			src = src[1:]
			continue
		}
		r, size := utf8.DecodeRune(src)
		if up, ok := m[r]; ok && !(r == utf8.RuneError && size == 1) {
			out = append(out, up...)
		} else {
			out = append(out, src[:size]...)
		}
		src = src[size:]
	}
	return out
}

func TestPythonTable(t *testing.T) {
	m := pythonTable(t)
	var disagree []string
	for cp := rune(0); cp <= utf8.MaxRune; cp++ {
		if 0xD800 <= cp && cp <= 0xDFFF {
			continue
		}
		src := string(cp)
		want, ok := m[cp]
		if !ok {
			want = src
		}
		got := Append(nil, []byte(src))
		if string(got) != want {
			disagree = append(disagree, fmt.Sprintf("U+%04X: Append(%q) = %q, want %q", cp, src, got, want))
		}
		if cp < utf8.RuneSelf {
			// Exercise every lane of the eight-bytes-at-a-time path.
			src8, want8 := strings.Repeat(src, 8), strings.Repeat(want, 8)
			if got := Append(nil, []byte(src8)); string(got) != want8 {
				t.Errorf("Append(%q) = %q, want %q", src8, got, want8)
			}
		}
		if len(got) > MaxExpansion*len(src) {
			t.Errorf("U+%04X: len(Append(%q)) = %d, want <= %d", cp, src, len(got), MaxExpansion*len(src))
		}
	}
	if len(disagree) > 0 {
		t.Errorf("%d code points differ from Python:\n%s", len(disagree), strings.Join(disagree, "\n"))
	}
}

func TestAppend(t *testing.T) {
	mixed := fill("Grüße aus Köln, Καλημέρα κόσμε, Привет, мир! ﬁ ŉ ΐ ", maxDatagram)
	worst := strings.Repeat("ΐ", maxDatagram/2)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"ascii", "hello, World! 0123 az@[`{", "HELLO, WORLD! 0123 AZ@[`{"},
		{"sharp s", "straße", "STRASSE"},
		{"fi ligature", "ﬁ", "FI"},
		{"iota dialytika tonos", "ΐ", "\u0399\u0308\u0301"},
		{"n apostrophe", "ŉ", "\u02bcN"},
		{"ypogegrammeni", "\u0345", "\u0399"},
		{"already upper", "ÄÖÜ ΣΑΣ", "ÄÖÜ ΣΑΣ"},
		{"ascii after non-ascii", "é abcdefghijklmnop", "É ABCDEFGHIJKLMNOP"},
		{"lone 0xff", "a\xffb", "A\xffB"},
		{"lone 0xff only", "\xff", "\xff"},
		{"truncated 2-byte at end", "straße\xc3", "STRASSE\xc3"},
		{"truncated 3-byte in middle", "x\xe2\x82y", "X\xe2\x82Y"},
		{"overlong NUL", "a\xc0\x80b", "A\xc0\x80B"},
		{"surrogate", "é\xed\xa0\x80é", "É\xed\xa0\x80É"},
		{"invalid between special casing", "ß\xffß\x80ﬁ", "SS\xffSS\x80FI"},
		{"max datagram ascii", fill("the quick brown fox, ", maxDatagram), fill("THE QUICK BROWN FOX, ", maxDatagram)},
		{"max datagram mixed", mixed, string(reference(t, []byte(mixed)))},
		{"worst case expansion", worst, strings.Repeat("\u0399\u0308\u0301", maxDatagram/2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Append(nil, []byte(tc.in))
			if string(got) != tc.want {
				t.Errorf("Append(%.80q) = %.80q, want %.80q", tc.in, got, tc.want)
			}
			if len(got) > MaxExpansion*len(tc.in) {
				t.Errorf("len(Append(%.80q)) = %d, want <= %d", tc.in, len(got), MaxExpansion*len(tc.in))
			}
			got = Append([]byte("> "), []byte(tc.in))
			if string(got) != "> "+tc.want {
				t.Errorf("Append(%q, %.80q) = %.80q, want %.80q", "> ", tc.in, got, "> "+tc.want)
			}
		})
	}
}

func TestAppendUsesCapacity(t *testing.T) {
	src := []byte(strings.Repeat("ΐ", 100))
	dst := make([]byte, 1, 1+MaxExpansion*len(src))
	got := Append(dst, src)
	if &got[0] != &dst[0] {
		t.Errorf("Append(dst, %.20q) reallocated although cap(dst)-len(dst) = MaxExpansion*len(src)", src)
	}
}

func TestInPlace(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		want string
	}{
		{"empty", "", true, ""},
		{"ascii", "hello, World! az@[`{", true, "HELLO, WORLD! AZ@[`{"},
		{"long ascii", fill("abc xyz ", 1400), true, fill("ABC XYZ ", 1400)},
		{"non-ascii", "straße", false, "straße"},
		{"non-ascii after 8-byte chunks", "abcdefghijklmnopé", false, "abcdefghijklmnopé"},
		{"invalid", "abc\xff", false, "abc\xff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			if ok := InPlace(b); ok != tc.ok || string(b) != tc.want {
				t.Errorf("InPlace(%.80q) = %v, b = %.80q; want %v, %.80q", tc.in, ok, b, tc.ok, tc.want)
			}
		})
	}
}

func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	for _, in := range []string{
		fill("hello, world ", 1400),
		fill("Straße, Καλημέρα, Привет ", 1400),
		strings.Repeat("ΐ", 700),
	} {
		src := []byte(in)
		dst := make([]byte, 0, MaxExpansion*len(src))
		if n := testing.AllocsPerRun(100, func() { Append(dst, src) }); n != 0 {
			t.Errorf("Append(dst, %.20q) with enough capacity: %v allocs, want 0", in, n)
		}
	}
	b := []byte(fill("hello, world ", 1400))
	if n := testing.AllocsPerRun(100, func() { InPlace(b) }); n != 0 {
		t.Errorf("InPlace(%.20q): %v allocs, want 0", b, n)
	}
}

// fill repeats unit to n bytes, padding with spaces rather than splitting a rune.
func fill(unit string, n int) string {
	s := strings.Repeat(unit, n/len(unit)+1)[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + strings.Repeat(" ", n-len(s))
}
