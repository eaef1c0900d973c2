package deflate

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// rootfsTar is a rootfs-like tar like the registry's cold-pull benchmark
// layer: files of 64-320 KiB, every other one random bytes (stored as
// Huffman-only blocks at level 1) and the rest random text over an
// 18-letter alphabet (short matches everywhere).
func rootfsTar(files int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	rnd := rand.New(rand.NewPCG(7, 7))
	for i := range files {
		data := make([]byte, 64<<10+rnd.IntN(256<<10))
		if i%2 == 0 {
			for j := range data {
				data[j] = byte(rnd.Uint32())
			}
		} else {
			for j := range data {
				data[j] = "abcdefgh ijklmnop\n"[rnd.IntN(18)]
			}
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/file%02d", i), Mode: 0o644, Size: int64(len(data)),
			ModTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Typeflag: tar.TypeReg, Uname: "root"})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

var benchRootfs = sync.OnceValue(func() []byte { return rootfsTar(80) })

// BenchmarkSegments encodes a rootfs-like tar (about 16 MiB) once with a
// Writer (one Write, as the cold-pull benchmark's baseline does) and
// once as all its 4 MiB segments one after the other on one goroutine,
// as a cold pull at --encode-parallelism 1 does: the CPU cost of
// encoding in segments against one encode, output checked.
func BenchmarkSegments(b *testing.B) {
	data := benchRootfs()
	for _, l := range []int{1, 6} {
		var want []byte
		{
			h := sha256.New()
			w, _ := NewWriter(h, l)
			w.Write(data)
			w.Close()
			want = h.Sum(nil)
		}
		cps := recordCheckpoints(b, l, data, 4<<20)
		b.Run(fmt.Sprintf("level%d/writer", l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			h := sha256.New()
			cpu0 := cpuTime()
			for b.Loop() {
				h.Reset()
				w, _ := NewWriter(h, l)
				w.Write(data)
				w.Close()
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			if !bytes.Equal(h.Sum(nil), want) {
				b.Fatal("output changed")
			}
		})
		b.Run(fmt.Sprintf("level%d/segments", l), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportMetric(float64(len(cps)), "segments")
			var out bytes.Buffer
			cpu0 := cpuTime()
			for b.Loop() {
				out.Reset()
				sp := NewSplicer(&out)
				for _, cp := range cps {
					sp.Begin(cp.Bit, cp.EndBit)
					if err := EncodeSegment(sp, bytes.NewReader(data), int64(len(data)), cp); err != nil {
						b.Fatal(err)
					}
					sp.End()
				}
				sp.Close()
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			if s := sha256.Sum256(out.Bytes()); !bytes.Equal(s[:], want) {
				b.Fatal("output differs")
			}
		})
	}
}

// BenchmarkSegmentsBusy is BenchmarkSegments at level 6 with and without
// a neighbour: a goroutine doing what the rest of a cold pull does next
// to the encoder (inflating a gzip stream of the same tar and hashing
// it, a streaming pass over memory), on the other core. thread-cpu-s/op
// is the encoding thread's own CPU time, so the neighbour's work is not
// in it: what it shows is how much the same encode costs with the
// neighbour running (cache and core contention), for the one-piece
// Writer and the segments alike. The CPU time of a thread also counts
// time its virtual CPU lost to the host, so min-thread-cpu-s, the least
// of the runs, is the figure to compare on a shared machine.
func BenchmarkSegmentsBusy(b *testing.B) {
	data := benchRootfs()
	cps := recordCheckpoints(b, 6, data, 4<<20)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, 1)
	zw.Write(data)
	zw.Close()
	encode := map[string]func(){
		"writer": func() {
			w, _ := NewWriter(io.Discard, 6)
			w.Write(data)
			w.Close()
		},
		"segments": func() {
			for _, cp := range cps {
				if err := EncodeSegment(io.Discard, bytes.NewReader(data), int64(len(data)), cp); err != nil {
					b.Fatal(err)
				}
			}
		},
	}
	for _, busy := range []bool{false, true} {
		for _, how := range []string{"writer", "segments"} {
			name := how + "/alone"
			if busy {
				name = how + "/neighbour"
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				stop := make(chan struct{})
				var wg sync.WaitGroup
				if busy {
					wg.Add(1)
					go func() {
						defer wg.Done()
						buf := make([]byte, 256<<10)
						for {
							select {
							case <-stop:
								return
							default:
							}
							zr, _ := gzip.NewReader(bytes.NewReader(gz.Bytes()))
							h := sha256.New()
							io.CopyBuffer(h, zr, buf)
						}
					}()
				}
				runtime.LockOSThread()
				var cpu time.Duration
				least := time.Duration(math.MaxInt64)
				for b.Loop() {
					c := threadCPU()
					encode[how]()
					c = threadCPU() - c
					cpu += c
					least = min(least, c)
				}
				runtime.UnlockOSThread()
				close(stop)
				wg.Wait()
				b.ReportMetric(cpu.Seconds()/float64(b.N), "thread-cpu-s/op")
				// Interference only adds: the least is the steadiest figure
				// on a shared machine.
				b.ReportMetric(least.Seconds(), "min-thread-cpu-s")
			})
		}
	}
}
