package deflate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

func dbgInput() []byte {
	src, _ := os.ReadFile("/work/wt/deflate-go/assembler/codec/codec.go")
	r := rand.New(rand.NewPCG(1, 2))
	var big []byte
	for len(big) < 3000000 {
		k := r.IntN(len(src) - 1000)
		big = append(big, src[k:k+r.IntN(1000)]...)
		if r.IntN(10) == 0 {
			for range r.IntN(3000) {
				big = append(big, byte(r.IntN(256)))
			}
		}
	}
	return big
}

func TestDbgFlush(t *testing.T) {
	big := dbgInput()
	for _, l := range []int{2, 4} {
		for _, p := range []plan{{flushes: []int64{100000}}, {flushes: []int64{100000, 100001}}, {writes: []int{4096}, flushes: []int64{100000}}, {writes: []int{4096}, flushes: []int64{100000, 100001}}} {
			t.Run(fmt.Sprint(l, p.writes, p.flushes), func(t *testing.T) {
				checkSame(t, "encode", ownEncode(t, l, big, p, Options{}), stdEncode(t, l, big, p))
			})
		}
	}
}
