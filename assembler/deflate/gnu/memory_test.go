package gnu

import (
	"io"
	"runtime"
	"testing"
)

// TestMemoryBounded writes 16 MiB through a Writer in 64 KiB pieces and
// checks that it allocates almost nothing after its construction: its
// memory is its window and buffers, not the input.
func TestMemoryBounded(t *testing.T) {
	testInputs(t)
	w, err := NewWriter(io.Discard, 1)
	if err != nil {
		t.Fatal(err)
	}
	piece := make([]byte, 64<<10)
	copy(piece, text[:4<<10]) // some literals and matches, mostly zeros
	w.Write(piece)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 255 {
		if _, err := w.Write(piece); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("writing 16 MiB allocated %d bytes", grew)
	}
}
