package zlib

import (
	"bytes"
	"testing"
)

// FuzzZlib compares the encoder with real zlib (the long-lived python3
// oracle) on the fuzzer's inputs at the level it picks. The seed corpus
// in testdata/fuzz/FuzzZlib runs in every go test.
func FuzzZlib(f *testing.F) {
	f.Add([]byte("hello hello hello hello"), uint8(5))
	f.Add(bytes.Repeat([]byte("abcab"), 30000), uint8(0))
	f.Add(make([]byte, 70000), uint8(6))
	f.Fuzz(func(t *testing.T, data []byte, level uint8) {
		if len(data) > 4<<20 {
			return
		}
		l := 1 + int(level)%9
		want := getOracle(t).deflate(t, data, l, 0)
		got := encode(t, data, l, 1+len(data)/3)
		if d := firstDiff(got, want); d >= 0 {
			t.Fatalf("level %d, %d bytes: differs from zlib at byte %d of %d", l, len(data), d, len(want))
		}
	})
}
