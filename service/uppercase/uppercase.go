package uppercase

import (
	"encoding/binary"
	"slices"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// MaxExpansion bounds the growth of the uppercase mapping: the output is never
// longer than MaxExpansion*len(src) bytes ("ΐ", 2 bytes, becomes 6).
const MaxExpansion = 3

// Append appends the uppercase of src to dst and returns the extended slice.
// It does not allocate when cap(dst)-len(dst) >= MaxExpansion*len(src).
// dst's spare capacity must not overlap src.
func Append(dst, src []byte) []byte {
	n := asciiLen(src)
	// Enough for all-ASCII input, and a first guess for the rest, since most
	// text does not expand.
	dst = slices.Grow(dst, len(src))
	off := len(dst)
	dst = dst[:off+n]
	upperASCII(dst[off:], src[:n])
	if n == len(src) {
		return dst
	}
	return appendRunes(dst, src[n:])
}

// appendRunes maps src rune by rune. Python's str.upper is context-free, so
// it is a function of each code point alone: a table lookup for the Basic
// Multilingual Plane, unicode.ToUpper above it, and the strings of the
// special cases (ß → SS, ΐ → three code points, …).
func appendRunes(dst, src []byte) []byte {
	t := tables()
	dst = slices.Grow(dst, MaxExpansion*len(src))
	// Write through an index into the spare capacity: the loop then needs
	// no capacity checks, and the worst case was reserved above.
	out := dst[len(dst):cap(dst)]
	j := 0
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			if c-'a' < 26 {
				c -= 'a' - 'A'
			}
			out[j] = c
			i++
			j++
			continue
		}
		var r rune
		var size int
		if c >= 0xc2 && c < 0xe0 && i+1 < len(src) && src[i+1]&0xc0 == 0x80 {
			// Two-byte sequences (Latin, Greek, Cyrillic, …) decoded inline.
			r, size = rune(c&0x1f)<<6|rune(src[i+1]&0x3f), 2
		} else if r, size = utf8.DecodeRune(src[i:]); r == utf8.RuneError && size == 1 {
			out[j] = c // not UTF-8: passes through unchanged
			i++
			j++
			continue
		}
		var u rune
		if r < 0x10000 {
			u = rune(t.bmp[r])
		} else {
			u = unicode.ToUpper(r)
		}
		switch {
		case u == r:
			j += copy(out[j:], src[i:i+size])
		case u == special:
			j += copy(out[j:], t.special[r])
		case u < utf8.RuneSelf: // ı → I, ſ → S
			out[j] = byte(u)
			j++
		case u < 0x800:
			out[j] = byte(0xc0 | u>>6)
			out[j+1] = byte(0x80 | u&0x3f)
			j += 2
		default:
			j += utf8.EncodeRune(out[j:], u)
		}
		i += size
	}
	return dst[:len(dst)+j]
}

// special marks, in the BMP table, a code point whose uppercase is not a
// single code point, or differs from its simple mapping; U+0000 is never
// looked up there (ASCII never reaches the table).
const special = 0

type caseTables struct {
	bmp     [0x10000]uint16 // uppercase of each BMP code point, or special
	special map[rune]string
}

var (
	tablesOnce sync.Once
	tablesPtr  *caseTables
)

// Prepare builds the non-ASCII mapping now (about a millisecond), so that
// the first non-ASCII text mapped later does not pay for it.
func Prepare() { tables() }

// tables builds the mapping on first use (about a millisecond). Simple
// mappings come from package unicode; golang.org/x/text/cases, which
// implements the full mapping with SpecialCasing.txt, decides every code
// point with a lowercase or titlecase property, which is where the full
// and simple mappings can differ. The package's tests check the result
// against Python for every Unicode scalar value.
func tables() *caseTables {
	tablesOnce.Do(func() {
		t := &caseTables{special: make(map[rune]string)}
		caser := cases.Upper(language.Und)
		var buf [4]byte
		for r := rune(0); r < 0x10000; r++ {
			u := unicode.ToUpper(r)
			if unicode.IsLower(r) || unicode.IsTitle(r) || unicode.Is(unicode.Other_Lowercase, r) {
				full := caser.String(string(buf[:utf8.EncodeRune(buf[:], r)]))
				if fr, size := utf8.DecodeRuneInString(full); size != len(full) || fr > 0xffff {
					t.special[r] = full
					u = special
				} else {
					u = fr
				}
			}
			if u > 0xffff {
				t.special[r] = string(u)
				u = special
			}
			t.bmp[r] = uint16(u)
		}
		tablesPtr = t
	})
	return tablesPtr
}

// InPlace uppercases b in place and returns true if b is all ASCII. Otherwise
// it leaves b unchanged and returns false, since the mapping may change its
// length.
func InPlace(b []byte) bool {
	if asciiLen(b) != len(b) {
		return false
	}
	upperASCII(b, b)
	return true
}

// asciiLen returns the length of src's ASCII prefix, checking eight bytes at
// a time because datagrams are mostly ASCII.
func asciiLen(src []byte) int {
	i := 0
	for ; len(src)-i >= 8; i += 8 {
		if binary.LittleEndian.Uint64(src[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(src) && src[i] < 0x80; i++ {
	}
	return i
}

// upperASCII writes the uppercase of the ASCII bytes src to dst, which has
// the same length and may be src itself.
func upperASCII(dst, src []byte) {
	dst = dst[:len(src)]
	i := 0
	for ; len(src)-i >= 8; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], upper8(binary.LittleEndian.Uint64(src[i:])))
	}
	for ; i < len(src); i++ {
		c := src[i]
		if c-'a' < 26 {
			c -= 'a' - 'A'
		}
		dst[i] = c
	}
}

// upper8 uppercases eight ASCII bytes at once, avoiding a mispredicted branch
// per byte on mixed-case text. Every byte is below 0x80, so adding a constant
// below 0x80 cannot carry into the next byte, and bit 7 of each sum tells
// whether that byte is >= 'a' or > 'z'.
func upper8(x uint64) uint64 {
	const ones = 0x0101010101010101
	geA := x + (0x80-'a')*ones
	gtZ := x + (0x80-'z'-1)*ones
	lower := (geA &^ gtZ) & (0x80 * ones)
	return x &^ (lower >> 2) // 0x80>>2 is the case bit 0x20
}
