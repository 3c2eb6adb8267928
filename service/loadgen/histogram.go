package loadgen

import (
	"math"
	"math/bits"
)

// The histogram is log-linear (like HdrHistogram): values below 2^(subBits+1)
// have a bucket each; above, every power of two is split into 2^subBits
// buckets of equal width. A bucket's midpoint is then within
// 1/2^(subBits+1) (0.8%) of every value in it.
const (
	subBits  = 6
	subCount = 1 << subBits // buckets per power of two
	linear   = 2 * subCount // values with a bucket each
	maxExp   = 35           // the largest power of two tracked: values up to 2^36 ns (68s)
	nBuckets = linear + (maxExp-subBits)*subCount
)

// histogram counts round-trip times in nanoseconds. It is fixed in size, so
// recording allocates nothing; one goroutine owns it.
type histogram struct {
	counts [nBuckets]uint64
	total  uint64
	max    int64
}

func bucketOf(v int64) int {
	if v < linear {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - 1
	if e > maxExp {
		return nBuckets - 1
	}
	return linear + (e-subBits-1)*subCount + int(v>>(e-subBits)) - subCount
}

// mid is the middle of bucket i.
func mid(i int) int64 {
	if i < linear {
		return int64(i)
	}
	j := i - linear
	shift := j/subCount + 1 // the bucket width is 1<<shift
	lower := int64(subCount+j%subCount) << shift
	return lower + (int64(1)<<shift)/2
}

func (h *histogram) record(v int64) {
	h.counts[bucketOf(v)]++
	h.total++
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile returns the smallest value that at least a fraction q of the
// values do not exceed, within the precision of a bucket, and never more
// than the maximum.
func (h *histogram) quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total))) // the nearest-rank method
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(mid(i), h.max)
		}
	}
	return h.max
}
