package gnu

import (
	"bytes"
	"testing"
)

// FuzzGNU compares the encoder with the gzip binary (whole gzip -n files)
// on the fuzzer's inputs at the level it picks. The seed corpus in
// testdata/fuzz/FuzzGNU runs in every go test.
func FuzzGNU(f *testing.F) {
	f.Add([]byte("hello hello hello hello"), uint8(5))
	f.Add(bytes.Repeat([]byte("abcab"), 30000), uint8(8))
	f.Add(make([]byte, 70000), uint8(6))
	f.Fuzz(func(t *testing.T, data []byte, level uint8) {
		if len(data) > 4<<20 {
			return
		}
		l := 1 + int(level)%9
		want := gzipFile(t, data, l, 0)
		got := frame(encode(t, data, l, 1+len(data)/3), data, l)
		if d := firstDiff(got, want); d >= 0 {
			t.Fatalf("level %d, %d bytes: differs from gzip at byte %d of %d", l, len(data), d, len(want))
		}
	})
}
