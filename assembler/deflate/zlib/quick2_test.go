package zlib

import (
	"os"
	"testing"
)

func TestQuick2(t *testing.T) {
	o := getOracle(t)
	for _, f := range []string{"/tmp/zv/bin.20", "/tmp/zv/doc.20", "/tmp/zv/mix", "/tmp/zv/edge", "/tmp/zv/zeros"} {
		in, _ := os.ReadFile(f)
		if len(in) > 6<<20 {
			in = in[:6<<20]
		}
		for level := 1; level <= 9; level++ {
			want := o.deflate(t, in, level, 0)
			for _, ch := range []int{0, 1000, 65536} {
				got := encode(t, in, level, ch)
				if d := firstDiff(got, want); d >= 0 {
					t.Errorf("%s level %d chunk %d: differs at byte %d (got %d bytes, want %d)", f, level, ch, d, len(got), len(want))
				}
			}
		}
	}
}
