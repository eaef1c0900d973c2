package bench

import (
	"context"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/bench/benchtest"
)

// smallChunks keeps test layers small: 4 KiB min, 16 KiB average, 64 KiB
// max.
func smallChunks() Options {
	return Options{MinChunk: 4 << 10, AverageBits: 14, MaxChunk: 64 << 10}
}

func newEstimator(t *testing.T, opts Options) *Estimator {
	t.Helper()
	e, err := NewEstimator(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func add(t *testing.T, e *Estimator, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		if err := e.AddLayout(context.Background(), dir, nil); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	t1 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 = t1.Add(26 * time.Hour)
)

// rebuildLayouts writes two layouts, one image each, whose gzip (level 6)
// layers hold the same 40 files of 12 KiB but for one, with other mtimes.
func rebuildLayouts(t *testing.T) (a, b string) {
	t.Helper()
	before, after := benchtest.Rebuild(t, benchtest.Files(1, 40, 12<<10), 17, t1, t2)
	a, b = t.TempDir(), t.TempDir()
	benchtest.WriteLayout(t, a, benchtest.Image{Layers: []benchtest.Layer{benchtest.GzipLayer(benchtest.Gzip(t, before, 6))}})
	benchtest.WriteLayout(t, b, benchtest.Image{Layers: []benchtest.Layer{benchtest.GzipLayer(benchtest.Gzip(t, after, 6))}})
	return a, b
}
