package deflate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

func TestQuick(t *testing.T) {
	src, _ := os.ReadFile("/work/wt/deflate-go/assembler/codec/codec.go")
	r := rand.New(rand.NewPCG(1, 2))
	rnd := make([]byte, 100000)
	for i := range rnd {
		rnd[i] = byte(r.IntN(256))
	}
	var big []byte
	for len(big) < 300000 {
		big = append(big, src...)
	}
	inputs := map[string][]byte{"empty": nil, "one": {7}, "src": src, "rnd": rnd, "big": big, "zeros": make([]byte, 200000)}
	for name, data := range inputs {
		for _, l := range levels {
			t.Run(fmt.Sprint(name, l), func(t *testing.T) {
				checkSame(t, "x", ownEncode(t, l, data, plan{}, Options{}), stdEncode(t, l, data, plan{}))
			})
		}
	}
}
