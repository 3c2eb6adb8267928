package uppercase

import "testing"

func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   string
	}{
		{"ascii-64", fill("Hello, world! The quick brown fox. ", 64)},
		{"ascii-1400", fill("Hello, world! The quick brown fox. ", 1400)},
		{"mixed-64", fill("Grüße aus Köln, Καλημέρα κόσμε, Привет, мир! ", 64)},
		{"mixed-1400", fill("Grüße aus Köln, Καλημέρα κόσμε, Привет, мир! ", 1400)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := []byte(bc.in)
			dst := make([]byte, 0, MaxExpansion*len(src))
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				Append(dst, src)
			}
		})
	}
}

func BenchmarkInPlace64(b *testing.B) {
	buf := []byte(fill("Hello, world! The quick brown fox. ", 64))
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		InPlace(buf)
	}
}
