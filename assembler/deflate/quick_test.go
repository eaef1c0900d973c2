package deflate

import (
	"bytes"
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

func TestQuickResume(t *testing.T) {
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
	for _, l := range levels {
		for _, p := range []plan{{}, {writes: []int{1000, 7, 65535, 333}}, {writes: []int{4096}, flushes: []int64{100000, 100001, 500000, 1 << 20}}} {
			t.Run(fmt.Sprint(l, p.writes, p.flushes), func(t *testing.T) {
				var cps []Checkpoint
				got := ownEncode(t, l, big, p, Options{CheckpointSpacing: 100000, OnCheckpoint: func(c Checkpoint) error { cps = append(cps, c); return nil }})
				want := stdEncode(t, l, big, p)
				checkSame(t, "encode", got, want)
				var pieces []Piece
				for _, cp := range cps {
					var b bytes.Buffer
					if err := EncodeSegment(&b, bytes.NewReader(big), int64(len(big)), cp); err != nil {
						t.Fatalf("segment [%d,%d): %v", cp.In, cp.End, err)
					}
					pieces = append(pieces, Piece{cp.Bit, cp.EndBit, b.Bytes()})
				}
				sp, err := Splice(pieces)
				if err != nil {
					t.Fatal(err)
				}
				checkSame(t, fmt.Sprintf("spliced %d segments", len(cps)), sp, want)
			})
		}
	}
}
