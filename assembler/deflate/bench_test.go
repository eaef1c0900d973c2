package deflate

import (
	"compress/flate"
	"io"
	"testing"
)

func BenchmarkEncode(b *testing.B) {
	data := textTar()
	for _, l := range []int{1, 6, 9} {
		b.Run("std/"+itoa(l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			w, _ := flate.NewWriter(io.Discard, l)
			for b.Loop() {
				w.Reset(io.Discard)
				w.Write(data)
				w.Close()
			}
		})
		b.Run("own/"+itoa(l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w, _ := NewWriter(io.Discard, l)
				w.Write(data)
				w.Close()
			}
		})
	}
}

func itoa(i int) string { return string(rune('0' + i)) }
