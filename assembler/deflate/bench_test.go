package deflate

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"testing"
)

// benchTar is the benchmarks' real input: a tar of Go source, 8 MiB of
// file content.
var benchTar = sync.OnceValue(func() []byte { return goTar(tb{}, "src", 8<<20, hasExt(".go")) })

// sumWriter hashes what it is given.
type sumWriter struct{ h hash.Hash }

func (s sumWriter) Write(p []byte) (int, error) { return s.h.Write(p) }

func stdSum(b *testing.B, level int, data []byte) []byte {
	h := sha256.New()
	w, err := flate.NewWriter(h, level)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return h.Sum(nil)
}

// Single stream: this encoder against compress/flate on the same input,
// every output checked against compress/flate's.
func BenchmarkEncode(b *testing.B) {
	data := benchTar()
	for _, l := range []int{1, 6, 9} {
		want := stdSum(b, l, data)
		b.Run(fmt.Sprintf("level%d/std", l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			h := sha256.New()
			w, _ := flate.NewWriter(h, l)
			for b.Loop() {
				h.Reset()
				w.Reset(h)
				w.Write(data)
				w.Close()
				if !bytes.Equal(h.Sum(nil), want) {
					b.Fatal("output changed")
				}
			}
		})
		b.Run(fmt.Sprintf("level%d/own", l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			h := sha256.New()
			for b.Loop() {
				h.Reset()
				w, _ := NewWriter(h, l)
				w.Write(data)
				w.Close()
				if !bytes.Equal(h.Sum(nil), want) {
					b.Fatal("output differs from compress/flate")
				}
			}
		})
	}
}

func recordCheckpoints(b *testing.B, level int, data []byte, spacing int64) []Checkpoint {
	var cps []Checkpoint
	w, err := NewWriterOptions(io.Discard, level, Options{CheckpointSpacing: spacing, OnCheckpoint: func(c Checkpoint) error {
		cps = append(cps, c)
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return cps
}

// EncodeParallel with 1, 2 and all cores, from checkpoints every MiB,
// next to compress/flate's single-core encode of the same input (MB/s of
// input). The target: level 6 at 2 cores >= 1.8x std.
func BenchmarkParallel(b *testing.B) {
	data := benchTar()
	for _, l := range []int{1, 6} {
		want := stdSum(b, l, data)
		cps := recordCheckpoints(b, l, data, 1<<20)
		b.Run(fmt.Sprintf("level%d/std", l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			h := sha256.New()
			w, _ := flate.NewWriter(h, l)
			cpu0 := cpuTime()
			for b.Loop() {
				h.Reset()
				w.Reset(h)
				w.Write(data)
				w.Close()
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
		workers := []int{1, 2}
		if n := runtime.GOMAXPROCS(0); n > 2 {
			workers = append(workers, n)
		}
		for _, n := range workers {
			b.Run(fmt.Sprintf("level%d/workers%d", l, n), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportMetric(float64(len(cps)), "segments")
				h := sha256.New()
				cpu0 := cpuTime()
				for b.Loop() {
					h.Reset()
					if err := EncodeParallel(context.Background(), sumWriter{h}, bytes.NewReader(data), int64(len(data)), cps, n); err != nil {
						b.Fatal(err)
					}
					if !bytes.Equal(h.Sum(nil), want) {
						b.Fatal("output differs from compress/flate")
					}
				}
				// CPU time of all goroutines: with idle cores, wall time
				// would approach it divided by the workers.
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			})
		}
	}
}

// The cost of recording checkpoints: encode time with none, every 4 MiB
// and every MiB, and the marshaled size of a checkpoint.
func BenchmarkRecord(b *testing.B) {
	data := benchTar()
	for _, l := range []int{1, 2, 6} {
		for _, spacing := range []int64{0, 4 << 20, 1 << 20} {
			b.Run(fmt.Sprintf("level%d/spacing%dKiB", l, spacing>>10), func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				var cps []Checkpoint
				cpu0 := cpuTime()
				for b.Loop() {
					if spacing == 0 {
						w, _ := NewWriter(io.Discard, l)
						w.Write(data)
						w.Close()
						continue
					}
					cps = recordCheckpoints(b, l, data, spacing)
				}
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
				if len(cps) > 1 {
					size := 0
					for _, c := range cps[1:] {
						m, _ := c.MarshalBinary()
						size += len(m)
					}
					b.ReportMetric(float64(size)/float64(len(cps)-1), "bytes/checkpoint")
					b.ReportMetric(float64(len(cps)), "segments")
				}
			})
		}
	}
}
