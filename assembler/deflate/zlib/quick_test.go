package zlib

import (
	"math/rand"
	"os"
	"testing"
)

func TestQuick(t *testing.T) {
	o := getOracle(t)
	t.Logf("zlib runtime %s", o.version)
	rnd := rand.New(rand.NewSource(1))
	small := make([]byte, 5000)
	rnd.Read(small)
	text, _ := os.ReadFile("/tmp/zv/src.20")
	text = text[:3<<20]
	for _, in := range [][]byte{nil, []byte("a"), []byte("hello hello hello hello"), small, text} {
		for level := 1; level <= 9; level++ {
			want := o.deflate(t, in, level, 0)
			got := encode(t, in, level, 0)
			if d := firstDiff(got, want); d >= 0 {
				t.Errorf("len %d level %d: differs at byte %d (got %d bytes, want %d)", len(in), level, d, len(got), len(want))
			}
		}
	}
}
