package deflate

import (
	"compress/flate"
	"io"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestAB(t *testing.T) {
	if os.Getenv("AB") == "" {
		t.Skip()
	}
	l, _ := strconv.Atoi(os.Getenv("AB"))
	data := textTar()
	var bs, bo time.Duration = 1 << 62, 1 << 62
	sw, _ := flate.NewWriter(io.Discard, l)
	for range 15 {
		t0 := time.Now()
		sw.Reset(io.Discard)
		sw.Write(data)
		sw.Close()
		bs = min(bs, time.Since(t0))
		t0 = time.Now()
		w, _ := NewWriter(io.Discard, l)
		w.Write(data)
		w.Close()
		bo = min(bo, time.Since(t0))
	}
	t.Logf("level %d: std %v own %v ratio own/std speed %.2f", l, bs, bo, float64(bs)/float64(bo))
}
