package zlib

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

const harness = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
int main(int argc, char **argv) {
  FILE *f = fopen(argv[2], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
  unsigned char *in = malloc(n); fread(in, 1, n, f);
  z_stream s; memset(&s, 0, sizeof s);
  deflateInit2(&s, atoi(argv[1]), Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  uLong cap = deflateBound(&s, n); unsigned char *out = malloc(cap);
  s.next_in = in; s.avail_in = n; s.next_out = out; s.avail_out = cap;
  deflate(&s, Z_FINISH);
  printf("%lu\n", s.total_out);
  return 0;
}
`

// benchInput is an 8 MiB tar of Go's sources, written to a file for the
// C harness.
func benchInput(b *testing.B) ([]byte, string) {
	data := ztestdata.Tar(filepath.Join(runtime.GOROOT(), "src"), 8<<20)
	path := filepath.Join(b.TempDir(), "in.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return data, path
}

// BenchmarkVsZlib times this encoder and C zlib (the system's libz through
// a small harness built with gcc; in-process timing of the harness
// includes its start and its reading of the file) on the same input in
// the same run, and reports both speeds and their ratio.
func BenchmarkVsZlib(b *testing.B) {
	data, path := benchInput(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "h.c")
	os.WriteFile(src, []byte(harness), 0o644)
	bin := filepath.Join(dir, "h")
	if out, err := exec.Command("gcc", "-O2", "-o", bin, src, "-lz").CombinedOutput(); err != nil {
		b.Skipf("cannot build the C zlib harness (gcc and zlib1g-dev needed): %v %s", err, out)
	}
	for _, level := range []int{1, 6, 9} {
		b.Run("level-"+strconv.Itoa(level), func(b *testing.B) {
			var ours, theirs time.Duration
			for b.Loop() {
				t0 := time.Now()
				w, _ := NewWriter(io.Discard, level)
				w.Write(data)
				w.Close()
				t1 := time.Now()
				if err := exec.Command(bin, strconv.Itoa(level), path).Run(); err != nil {
					b.Fatal(err)
				}
				ours += t1.Sub(t0)
				theirs += time.Since(t1)
			}
			mb := float64(len(data)) * float64(b.N) / 1e6
			b.ReportMetric(mb/ours.Seconds(), "ours-MB/s")
			b.ReportMetric(mb/theirs.Seconds(), "zlib-MB/s")
			b.ReportMetric(ours.Seconds()/theirs.Seconds(), "time-vs-zlib")
		})
	}
}

// BenchmarkParallel encodes the input with EncodeParallel from checkpoints
// every 1 MiB on 1, 2 and all cores, next to the single Writer.
func BenchmarkParallel(b *testing.B) {
	data, _ := benchInput(b)
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
