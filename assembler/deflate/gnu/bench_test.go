package gnu

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/ztestdata"
)

// BenchmarkVsGzip times this encoder and the gzip binary (gzip -c -n
// -LEVEL < file > /dev/null, its process start included) on the same
// 8 MiB tar in the same run.
func BenchmarkVsGzip(b *testing.B) {
	data := ztestdata.Tar(filepath.Join(runtime.GOROOT(), "src"), 8<<20)
	path := filepath.Join(b.TempDir(), "in.tar")
	os.WriteFile(path, data, 0o644)
	for _, level := range []int{1, 6, 9} {
		b.Run("level-"+strconv.Itoa(level), func(b *testing.B) {
			var ours, theirs time.Duration
			for b.Loop() {
				t0 := time.Now()
				w, _ := NewWriter(io.Discard, level)
				w.Write(data)
				w.Close()
				t1 := time.Now()
				f, _ := os.Open(path)
				cmd := exec.Command("gzip", "-c", "-n", "-"+strconv.Itoa(level))
				cmd.Stdin = f
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				f.Close()
				ours += t1.Sub(t0)
				theirs += time.Since(t1)
			}
			mb := float64(len(data)) * float64(b.N) / 1e6
			b.ReportMetric(mb/ours.Seconds(), "ours-MB/s")
			b.ReportMetric(mb/theirs.Seconds(), "gzip-MB/s")
			b.ReportMetric(ours.Seconds()/theirs.Seconds(), "time-vs-gzip")
		})
	}
}

// BenchmarkParallel: EncodeParallel from checkpoints every 1 MiB on 1, 2
// and all cores, next to the single Writer.
func BenchmarkParallel(b *testing.B) {
	data := ztestdata.Tar(filepath.Join(runtime.GOROOT(), "src"), 8<<20)
	for _, level := range []int{1, 6, 9} {
		var buf bytes.Buffer
		w, _ := NewWriterOptions(&buf, Options{Level: level, CheckpointEvery: 1 << 20})
		w.Write(data)
		w.Close()
		cps := w.Checkpoints()
		b.Run("level-"+strconv.Itoa(level)+"/single", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				w, _ := NewWriter(io.Discard, level)
				w.Write(data)
				w.Close()
			}
		})
		for _, n := range []int{1, 2, runtime.NumCPU()} {
			b.Run("level-"+strconv.Itoa(level)+"/workers-"+strconv.Itoa(n), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if err := EncodeParallel(context.Background(), io.Discard, bytes.NewReader(data), int64(len(data)), level, cps, n); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
