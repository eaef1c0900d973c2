package codec

import (
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
