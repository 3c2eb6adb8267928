package loadgen

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/udpd/udpd/service/uppercase"
)

// SeqLen is the length of the sequence number that starts every request:
// 12 letters 'a' to 'p', one per 4 bits, most significant first. The reply
// carries the same number in 'A' to 'P'.
const SeqLen = 12

// Padding texts, all lower case. Their uppercase has the same length, so a
// reply is as long as its request.
const (
	asciiText = " the quick brown fox jumps over the lazy dog,"
	utf8Text  = " über öl und käse, καλημέρα κόσμε, привет, мир, добрый день,"
)

// payload is the request template of a run and the reply it expects.
type payload struct {
	request []byte // sequence number 0, then the padding
	tail    []byte // uppercase.Append(nil, request)[SeqLen:]
}

// newPayload builds a request of size bytes padded with kind's text, cut
// at a rune boundary and filled up with spaces.
func newPayload(kind string, size int) (*payload, error) {
	text := asciiText
	if kind == UTF8 {
		text = utf8Text
	}
	req := make([]byte, SeqLen, size)
	putSeq(req, 0)
	for i := 0; len(req) < size; {
		r, n := utf8.DecodeRuneInString(text[i:])
		if len(req)+n > size {
			req = append(req, ' ')
			continue
		}
		req = utf8.AppendRune(req, r)
		i = (i + n) % len(text)
	}
	// The expected reply is the uppercase of the request. The sequence
	// number is ASCII letters, whose uppercase depends on nothing around
	// them, so the uppercase of any request is the uppercase of its
	// number followed by this tail.
	reply := uppercase.Append(nil, req)
	if len(reply) > MaxSize {
		return nil, fmt.Errorf("size %d: the reply would be %d bytes, more than a datagram holds", size, len(reply))
	}
	return &payload{request: req, tail: reply[SeqLen:]}, nil
}

func (p *payload) replyLen() int { return SeqLen + len(p.tail) }

// matches reports whether b is exactly the uppercase of the request that
// carries seq.
func (p *payload) matches(b []byte, seq uint64) bool {
	if len(b) != SeqLen+len(p.tail) {
		return false
	}
	for i := range SeqLen {
		if b[i] != 'A'+byte(seq>>(4*(SeqLen-1-i))&15) {
			return false
		}
	}
	return bytes.Equal(b[SeqLen:], p.tail)
}

// putSeq writes seq in lower-case letters into b[:SeqLen].
func putSeq(b []byte, seq uint64) {
	_ = b[SeqLen-1]
	for i := range SeqLen {
		b[i] = 'a' + byte(seq>>(4*(SeqLen-1-i))&15)
	}
}

// seqOf reads the sequence number at the start of b in either case, so a
// wrong reply that still carries it is attributed to its request.
func seqOf(b []byte) (uint64, bool) {
	if len(b) < SeqLen {
		return 0, false
	}
	var seq uint64
	for _, c := range b[:SeqLen] {
		c |= 0x20 // lower case
		if c < 'a' || c > 'p' {
			return 0, false
		}
		seq = seq<<4 | uint64(c-'a')
	}
	return seq, true
}
