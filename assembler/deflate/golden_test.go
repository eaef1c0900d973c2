package deflate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
)

// goldenInput is made from a seeded generator only, so that it is the same
// on every machine: words, numbers and runs, with stretches of noise.
func goldenInput() []byte {
	words := []string{"layer", "chunk", "pack", "index", "the", "of", "deflate", "window", "block", "match",
		"func", "return", "if", "err", "nil", "{", "}", "\n", "\t", "=", ":=", "(", ")", "registry", "digest"}
	r := rand.New(rand.NewPCG(2026, 14))
	var b []byte
	for len(b) < 600<<10 {
		switch r.IntN(40) {
		case 0:
			for range r.IntN(2000) {
				b = append(b, byte(r.Uint32()))
			}
		case 1:
			b = append(b, make([]byte, r.IntN(5000))...)
		default:
			for range 1 + r.IntN(30) {
				b = append(b, words[r.IntN(len(words))]...)
				b = append(b, ' ')
			}
			b = fmt.Appendf(b, "%d\n", r.IntN(100000))
		}
	}
	return b
}

// The sha256 of the golden input's deflate stream at every level, as
// go1.26's compress/flate writes it with one Write and Close. A toolchain
// whose compress/flate writes other bytes fails here (and the differential
// tests then say whether this encoder still equals it).
var golden = map[int]string{
	-2: "682580af89c202564af65fcd2085fef47de51e577e40647a793a8e03c6805b11",
	0:  "b9a3d3262b4803b7c29da0a8b058745ec7f1d731b1b203bf7fde8c94dec5fffb",
	1:  "e4ce5859a8b92f963145349d339acaf0eff376e7f77ab828348b18fa0146808a",
	2:  "6045e550212298cfb545f4e060504986ff2733669c6626f552bb1e1d8cf91ec0",
	3:  "ccf2dc12b61fe9e911a2c9855cc586eb0da08b601fed961625f9f1645f6dc073",
	4:  "74137118a5a89a2cad8462c8d7ac96fab822ea9ffb79ba8bcf9fd68b1998f071",
	5:  "41c9a5119016e0ce70f5a55a93dd120f8c573767247b0c10c597ff000d5147c2",
	6:  "2bda8361faa78598793edfc3cc8ebddbeeab63bf256a90170110a3ffab58c50b",
	7:  "6a16c2a25f30407c6e6f82abe0142303ee1be0a405a1ef573075211d44003bef",
	8:  "6aca2095f649fb142b7d84ce89d8dae049304afc47cf384fb1943c0feda3e430",
	9:  "7ac672a00d500a375ad89ea0367a7129298e6da88d38336460277f6d21bdb813",
}

func TestGolden(t *testing.T) {
	data := goldenInput()
	for _, l := range levels {
		sum := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
		own := sum(ownEncode(t, l, data, plan{}, Options{}))
		std := sum(stdEncode(t, l, data, plan{}))
		if own != golden[l] {
			t.Errorf("level %d: this encoder's output has sha256 %s, golden %s", l, own, golden[l])
		}
		if std != golden[l] {
			t.Errorf("level %d: compress/flate's output has sha256 %s, golden %s: the toolchain's encoder changed", l, std, golden[l])
		}
	}
}
