package codec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"runtime"
	"testing"
)

// TestFindBoundedMemory: what Find allocates does not grow with the blob
// (it streams both sides; nothing holds a whole blob).
func TestFindBoundedMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	alloc := func(size int) uint64 {
		raw := genTar(t, 9, size)
		blob := encode(t, mkEnc(t, EncoderStdlib, 6), raw)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, ok, _ := find(t, raw, blob); !ok {
			t.Fatal("no match")
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(2<<20), alloc(16<<20)
	t.Logf("Find allocated %d bytes for 2 MiB, %d for 16 MiB", small, large)
	if large > small+(1<<20) {
		t.Errorf("allocation grows with the input: %d -> %d bytes", small, large)
	}
}

// TestPlanBoundedMemory: what a segmented encode (Plan.Encode, the cold
// pull's path) allocates does not grow with the number of segments: it
// reuses the segments' input buffers, its output chunks and the
// encoders' tables instead of allocating them per segment.
func TestPlanBoundedMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	enc := mkEnc(t, EncoderStdlib, 6)
	alloc := func(size int) (uint64, int) {
		raw := genTar(t, 25, size)
		var blob bytes.Buffer
		w, err := NewWriterOptions(&blob, enc, WriterOptions{CheckpointSpacing: 256 << 10})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(enc, w.Checkpoints())
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if err := p.Encode(context.Background(), h, bytes.NewReader(raw), 0, 2, nil); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if want := sha256.Sum256(blob.Bytes()); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("plan output differs")
		}
		return after.TotalAlloc - before.TotalAlloc, len(p.Segments())
	}
	alloc(1 << 20) // fill the encoders' table pool
	small, ns := alloc(2 << 20)
	large, nl := alloc(16 << 20)
	t.Logf("Plan.Encode allocated %d bytes for %d segments (2 MiB), %d for %d (16 MiB)", small, ns, large, nl)
	if nl < 4*ns {
		t.Fatalf("only %d and %d segments", ns, nl)
	}
	// 51 more segments: fresh inputs would add 13 MiB, fresh encoder
	// tables 23 MiB. What may be new: a few buffers of segments longer
	// than the ones before, tables the pool lost to a GC.
	if large > small+(4<<20) {
		t.Errorf("allocation grows with the segments: %d -> %d bytes", small, large)
	}
}
