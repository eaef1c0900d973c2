package deflate

import (
	"io"
	"runtime"
	"testing"
)

// A Writer allocates its state once: encoding 32 MiB (1 MiB under the
// race detector) more costs no more
// memory than encoding nothing, at every level, checkpoints included.
func TestWriterMemoryBounded(t *testing.T) {
	chunk := cat(text(48<<10, 90), make([]byte, 16<<10))
	total := 32 << 20
	if raceEnabled {
		total = 1 << 20
	}
	for _, l := range []int{-2, 0, 1, 2, 6, 9} {
		n := 0
		w, err := NewWriterOptions(io.Discard, l, Options{CheckpointSpacing: 64 << 20, OnCheckpoint: func(Checkpoint) error { n++; return nil }})
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			w.Write(chunk) // warm up: buffers that grow to their size once
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for written := 0; written < total; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("level %d: encoding %d MiB allocated %d bytes", l, total>>20, grew)
		}
	}
}
