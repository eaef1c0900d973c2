package gnu

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

func gzipBody(t *testing.T, in []byte, level int) []byte {
	cmd := exec.Command("gzip", "-c", "-n", "-"+strconv.Itoa(level))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out[10 : len(out)-8]
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestQuickGzip(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	small := make([]byte, 5000)
	rnd.Read(small)
	var ins [][]byte
	ins = append(ins, nil, []byte("a"), []byte("hello hello hello hello"), small)
	for _, f := range []string{"/tmp/zv/src.20", "/tmp/zv/bin.20", "/tmp/zv/mix", "/tmp/zv/zeros", "/tmp/zv/edge"} {
		b, _ := os.ReadFile(f)
		ins = append(ins, b[:min(len(b), 4<<20)])
	}
	for i, in := range ins {
		for level := 1; level <= 9; level++ {
			want := gzipBody(t, in, level)
			var buf bytes.Buffer
			w, _ := NewWriterOptions(&buf, Options{Level: level, CheckpointEvery: 200 << 10})
			w.Write(in)
			w.Close()
			if d := firstDiff(buf.Bytes(), want); d >= 0 {
				t.Errorf("input %d len %d level %d: differs at %d (got %d want %d)", i, len(in), level, d, buf.Len(), len(want))
				continue
			}
			cps := w.Checkpoints()
			var par bytes.Buffer
			if err := EncodeParallel(context.Background(), &par, bytes.NewReader(in), int64(len(in)), level, cps, 2); err != nil {
				t.Fatalf("input %d level %d parallel: %v", i, level, err)
			}
			if d := firstDiff(par.Bytes(), want); d >= 0 {
				t.Errorf("input %d level %d parallel (%d cps): differs at %d", i, level, len(cps), d)
			}
		}
	}
}
