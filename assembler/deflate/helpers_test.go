package deflate

import (
	"bytes"
	"compress/flate"
	"slices"
	"testing"
)

// levels are every compress/flate level.
var levels = []int{-2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

// A plan says how input reaches an encoder: Write sizes, cycled, and the
// input offsets after which to Flush.
type plan struct {
	writes  []int // nil: one Write
	flushes []int64
}

type flusher interface {
	Write([]byte) (int, error)
	Flush() error
	Close() error
}

func feed(t testing.TB, w flusher, data []byte, p plan) {
	t.Helper()
	fl := p.flushes
	in := int64(0)
	for i := 0; len(data) > 0 || len(fl) > 0; i++ {
		n := len(data)
		if len(p.writes) > 0 {
			n = min(n, p.writes[i%len(p.writes)])
		}
		if len(fl) > 0 {
			n = int(min(int64(n), fl[0]-in))
		}
		if n > 0 {
			if _, err := w.Write(data[:n]); err != nil {
				t.Fatal(err)
			}
		}
		data = data[n:]
		in += int64(n)
		for len(fl) > 0 && fl[0] <= in {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			fl = fl[1:]
		}
		if len(data) == 0 && len(fl) > 0 && fl[0] > in {
			fl = nil
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func stdEncode(t testing.TB, level int, data []byte, p plan) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, w, data, p)
	return b.Bytes()
}

func ownEncode(t testing.TB, level int, data []byte, p plan, opts Options) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewWriterOptions(&b, level, opts)
	if err != nil {
		t.Fatal(err)
	}
	feed(t, w, data, p)
	return b.Bytes()
}

// firstDiff is the first index where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func checkSame(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, compress/flate %d; first difference at byte %d", what, len(got), len(want), firstDiff(got, want))
	}
}

func slicesSort(v []int64) { slices.Sort(v) }
