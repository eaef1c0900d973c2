package zlib

import (
	"bytes"
	"context"
	"os"
	"testing"
)

func TestQuickResume(t *testing.T) {
	in, _ := os.ReadFile("/tmp/zv/src.20")
	in = in[:4<<20]
	for level := 1; level <= 9; level++ {
		var one bytes.Buffer
		w, _ := NewWriterOptions(&one, Options{Level: level, CheckpointEvery: 256 << 10})
		w.Write(in)
		w.Close()
		cps := w.Checkpoints()
		for i := range cps {
			b, _ := cps[i].MarshalBinary()
			var c Checkpoint
			if err := c.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			cps[i] = c
			if i == 0 {
				t.Logf("level %d: %d checkpoints, first %d bytes: %+v", level, len(cps), len(b), c.In)
			}
		}
		for _, workers := range []int{1, 2, 4} {
			var par bytes.Buffer
			err := EncodeParallel(context.Background(), &par, bytes.NewReader(in), int64(len(in)), level, cps, workers)
			if err != nil {
				t.Fatalf("level %d workers %d: %v", level, workers, err)
			}
			if d := firstDiff(par.Bytes(), one.Bytes()); d >= 0 {
				t.Fatalf("level %d workers %d: differs at %d; cp0 %+v", level, workers, d, cps[0])
			}
		}
	}
}
