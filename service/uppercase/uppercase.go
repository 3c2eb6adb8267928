package uppercase

import (
	"encoding/binary"
	"slices"
	"sync"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/transform"
)

// MaxExpansion bounds the growth of the uppercase mapping: the output is never
// longer than MaxExpansion*len(src) bytes ("ΐ", 2 bytes, becomes 6).
const MaxExpansion = 3

// A Caser is not safe for concurrent use; pooling pointers lets concurrent
// callers share them without allocating in steady state.
var casers = sync.Pool{
	New: func() any {
		c := cases.Upper(language.Und)
		return &c
	},
}

// Append appends the uppercase of src to dst and returns the extended slice.
// It does not allocate when cap(dst)-len(dst) >= MaxExpansion*len(src),
// except to refill its pool of casers (first use, or after a GC emptied it).
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
	return appendCased(dst, src[n:])
}

func appendCased(dst, src []byte) []byte {
	c := casers.Get().(*cases.Caser)
	defer casers.Put(c)
	c.Reset()
	for {
		nDst, nSrc, err := c.Transform(dst[len(dst):cap(dst)], src, true)
		dst = dst[:len(dst)+nDst]
		src = src[nSrc:]
		switch err {
		case nil:
			return dst
		case transform.ErrShortDst:
			// Room for the worst case of all the rest, so this happens at
			// most once.
			dst = slices.Grow(dst, MaxExpansion*len(src))
		default:
			// Unreachable: with atEOF the caser copies invalid UTF-8
			// through and reports nothing but ErrShortDst.
			panic("uppercase: " + err.Error())
		}
	}
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
