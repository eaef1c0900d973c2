package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/opencontainers/go-digest"
)

// benchLayer is a ~64 MiB rootfs-like tar, gzip level 6 as docker and
// BuildKit write it.
func benchLayer(b *testing.B) (tar, blob []byte) {
	tar = rootfsN(b, 320, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return tar, gzipped(b, tar, 6)
}

// BenchmarkLayerPull pulls a split layer: cold (re-encoded every time, no
// layer cache) and hot (from the layer cache), next to the bare stdlib
// gzip encode of the same tar, the floor of a cold pull. MB/s are of the
// compressed blob.
func BenchmarkLayerPull(b *testing.B) {
	tar, blob := benchLayer(b)
	for _, hot := range []bool{false, true} {
		name := "cold"
		if hot {
			name = "hot"
		}
		b.Run(name, func(b *testing.B) {
			e := newConvertEnv(b, ConvertOptions{})
			if hot {
				e.close()
				var err error
				if e.layers, err = chunkstore.OpenFileCache(filepath.Join(e.dir, "layers"), 1<<30, nil); err != nil {
					b.Fatal(err)
				}
				e.open()
			}
			d := e.pushBlob("app", blob)
			e.drain()
			if rec, _ := e.graph.Blob(d); rec.Kind != refgraph.KindLayer {
				b.Fatalf("layer not converted: kind %d", rec.Kind)
			}
			if hot {
				pullDiscard(b, e, d) // fills the cache
			}
			b.SetBytes(int64(len(blob)))
			b.ResetTimer()
			for range b.N {
				pullDiscard(b, e, d)
			}
		})
	}
	b.Run("baseline-gzip6-encode", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			w, _ := gzip.NewWriterLevel(io.Discard, 6)
			w.Write(tar)
			w.Close()
		}
	})
}

func pullDiscard(b *testing.B, e *env, d digest.Digest) {
	rc, _, err := e.svc.OpenBlob(context.Background(), "app", d, 0, -1)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n == 0 {
		b.Fatalf("pulled %d bytes: %v", n, err)
	}
}

// BenchmarkConvert measures the background conversion of one layer
// (decompress, find the encoder, split, chunk, verify) next to one stdlib
// gzip level 6 encode of the same tar.
func BenchmarkConvert(b *testing.B) {
	tar, blob := benchLayer(b)
	b.Run("convert", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		var cpu time.Duration
		for range b.N {
			b.StopTimer()
			e := newConvertEnv(b, ConvertOptions{})
			e.pushBlob("app", blob)
			b.StartTimer()
			c := cpuTime()
			e.drain()
			cpu += cpuTime() - c
		}
		// Throughput per core: tar bytes converted per CPU-second.
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		b.ReportMetric(float64(len(tar))*float64(b.N)/1e6/cpu.Seconds(), "tar-MB/cpu-s")
	})
	b.Run("baseline-gzip6-encode", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			var out bytes.Buffer
			w, _ := gzip.NewWriterLevel(&out, 6)
			w.Write(tar)
			w.Close()
		}
	})
}

// coldPullLayers are the layer encodings BenchmarkColdPull pulls: the
// same ~64 MiB tar as each tool writes it (GNU gzip and Python from the
// host; the test command installs them). Each blob is made only when its
// benchmark runs.
func coldPullLayers(tar []byte) []struct {
	name string
	blob func(b *testing.B) []byte
} {
	return []struct {
		name string
		blob func(b *testing.B) []byte
	}{
		{"stdlib-gzip1", func(b *testing.B) []byte { return gzipped(b, tar, 1) }},
		{"stdlib-gzip6", func(b *testing.B) []byte { return gzipped(b, tar, 6) }},
		{"pgzip", func(b *testing.B) []byte {
			var buf bytes.Buffer
			w := pgzip.NewWriter(&buf)
			w.Write(tar)
			w.Close()
			return buf.Bytes()
		}},
		{"zstd", func(b *testing.B) []byte {
			var buf bytes.Buffer
			w, _ := zstd.NewWriter(&buf)
			w.Write(tar)
			w.Close()
			return buf.Bytes()
		}},
		{"gnu-gzip9", func(b *testing.B) []byte { return tool(b, tar, "gzip", "-9", "-n", "-c") }},
		{"python-zlib6", func(b *testing.B) []byte {
			return tool(b, tar, "python3", "-c",
				"import sys, gzip; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read(), compresslevel=6, mtime=0))")
		}},
		{"pigz", func(b *testing.B) []byte { return tool(b, tar, "pigz", "-c") }},
	}
}

// BenchmarkColdPull pulls split layers of each encoding cold (no layer
// cache: every pull encodes) with --encode-parallelism 1, 2 and all
// CPUs, next to one encode of the same recipe on one goroutine
// (GOMAXPROCS 1), all in the same run. MB/s are of the compressed blob;
// cpu-s/op is the process's user+system CPU time per pull (or encode).
// A layer is made and converted only when one of its benchmarks is
// selected (-bench BenchmarkColdPull/stdlib-gzip6/).
func BenchmarkColdPull(b *testing.B) {
	tar, _ := benchLayer(b)
	pars := []int{1, 2}
	if n := runtime.NumCPU(); n > 2 {
		pars = append(pars, n)
	}
	for _, l := range coldPullLayers(tar) {
		b.Run(l.name, func(b *testing.B) { coldPull(b, tar, l.name, l.blob(b), pars) })
	}
}

// coldPull converts one layer and runs its encode and pull benchmarks.
func coldPull(b *testing.B, tar []byte, name string, blob []byte, pars []int) {
	e := newConvertEnv(b, ConvertOptions{})
	d := e.pushBlob("app", blob)
	e.drain()
	rec, err := e.graph.Blob(d)
	if err != nil || rec.Kind != refgraph.KindLayer {
		b.Fatalf("%s: not converted to a layer (kind %d): %v", name, rec.Kind, err)
	}
	var enc codec.Encoding
	if err := json.Unmarshal(rec.Layout.Encoding, &enc); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %s, %d checkpoint bytes", name, enc, len(rec.Layout.Checkpoints))
	b.Run("encode-1core", func(b *testing.B) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		b.SetBytes(int64(len(blob)))
		cpu := cpuTime()
		for range b.N {
			w, err := codec.NewWriter(io.Discard, enc)
			if err != nil {
				b.Fatal(err)
			}
			w.Write(tar)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	})
	for _, par := range pars {
		b.Run(fmt.Sprintf("pull-par%d", par), func(b *testing.B) {
			e.close()
			e.encodePar = par
			e.open()
			b.SetBytes(int64(len(blob)))
			b.ResetTimer()
			cpu, gc := cpuTime(), gcCPU()
			for range b.N {
				pullDiscard(b, e, d)
			}
			b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric((gcCPU()-gc).Seconds()/float64(b.N), "gc-cpu-s/op")
		})
	}
}

// BenchmarkColdPullPaired is BenchmarkColdPull for the stdlib gzip
// layers on a shared machine: rounds of one encode (GOMAXPROCS 1), one
// cold pull at --encode-parallelism 1 and one at 2, back to back, so
// that the three see the same load; it reports the least wall and CPU
// time of each over the rounds (interference only adds, and the CPU time
// of a virtual machine's process also counts time the host took from
// it), and the speed of the pulls against the encode from those least
// wall times. Each round also runs two whole encodes at once ("twin"):
// twin/encode-speed is how much two cores of this machine speed up this
// work when nothing is shared, the ceiling for pull2/encode-speed.
// -benchtime Nx runs N rounds.
//
// The service is opened again to change the parallelism. The first pull
// of a freshly opened service touches memory for the first time: 2,000
// to 3,300 more minor page faults than the next pull (each run's -faults
// metric, per round), 25-40 ms at the about 12 µs a fault costs on this
// virtual machine (bench/cold-pull.md). A registry in service pulls warm,
// so pull1 and pull2 are each a service's second pull; pull2first, the
// first at parallelism 2, is reported on its own.
func BenchmarkColdPullPaired(b *testing.B) {
	tar, _ := benchLayer(b)
	for _, l := range coldPullLayers(tar)[:2] {
		b.Run(l.name, func(b *testing.B) {
			blob := l.blob(b)
			e := newConvertEnv(b, ConvertOptions{})
			d := e.pushBlob("app", blob)
			e.drain()
			rec, err := e.graph.Blob(d)
			if err != nil || rec.Kind != refgraph.KindLayer || len(rec.Layout.Checkpoints) == 0 {
				b.Fatalf("%s: not converted with checkpoints (kind %d): %v", l.name, rec.Kind, err)
			}
			var enc codec.Encoding
			if err := json.Unmarshal(rec.Layout.Encoding, &enc); err != nil {
				b.Fatal(err)
			}
			// encodeOnce is one whole encode of the layer's recipe.
			encodeOnce := func() error {
				w, err := codec.NewWriter(io.Discard, enc)
				if err != nil {
					return err
				}
				w.Write(tar)
				return w.Close()
			}
			encode := func() {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
				if err := encodeOnce(); err != nil {
					b.Fatal(err)
				}
			}
			// The layer's own tool, compress/gzip, on one core: the
			// baseline the target names.
			stdlib := func() {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
				w, err := gzip.NewWriterLevel(io.Discard, enc.Level)
				if err != nil {
					b.Fatal(err)
				}
				w.Write(tar)
				w.Close()
			}
			// Two whole encodes at once, each on its own goroutine, all
			// cores: what two cores give this work with no pipeline at
			// all (shared caches, memory bandwidth, a virtual machine's
			// vCPUs). twin/encode-speed is the ceiling a 2-core pull
			// could reach.
			twin := func() {
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						if err := encodeOnce(); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			pull := func() { pullDiscard(b, e, d) }
			reopen := func(n int, warm bool) func() {
				return func() {
					e.close()
					e.encodePar = n
					e.open()
					if warm {
						pull()
					}
				}
			}
			runs := []struct {
				name      string
				prep, run func()
			}{
				{"encode", func() {}, encode},
				{"stdlib", func() {}, stdlib},
				{"pull1", reopen(1, true), pull},
				{"pull2first", reopen(2, false), pull},
				{"pull2", func() {}, pull}, // warm: after pull2first
				{"twin", func() {}, twin},
			}
			faults := make([]int64, len(runs))           // summed over the rounds
			least := make([][2]time.Duration, len(runs)) // wall, CPU
			for i := range least {
				least[i] = [2]time.Duration{math.MaxInt64, math.MaxInt64}
			}
			b.SetBytes(int64(len(blob)))
			for b.Loop() {
				for i, r := range runs {
					b.StopTimer()
					r.prep()
					b.StartTimer()
					t0, c0, f0 := time.Now(), cpuTime(), minflt()
					r.run()
					wall, cpu := time.Since(t0), cpuTime()-c0
					faults[i] += minflt() - f0
					least[i] = [2]time.Duration{min(least[i][0], wall), min(least[i][1], cpu)}
				}
			}
			for i, r := range runs {
				b.ReportMetric(least[i][0].Seconds(), r.name+"-min-s")
				b.ReportMetric(least[i][1].Seconds(), r.name+"-min-cpu-s")
				b.ReportMetric(float64(faults[i])/float64(b.N), r.name+"-faults")
			}
			speed := func(base, of int) float64 { return least[base][0].Seconds() / least[of][0].Seconds() }
			b.ReportMetric(speed(0, 2), "pull1/encode-speed")
			b.ReportMetric(speed(0, 3), "pull2first/encode-speed")
			b.ReportMetric(speed(0, 4), "pull2/encode-speed")
			b.ReportMetric(speed(1, 4), "pull2/stdlib-speed")
			b.ReportMetric(2*speed(0, 5), "twin/encode-speed")
		})
	}
}

// BenchmarkFirstByte is the time to the first 64 KiB of a cold pull of
// a 1 GiB stdlib gzip-6 layer with checkpoints (the first deflate blocks
// of the first segment, not only the gzip header).
func BenchmarkFirstByte(b *testing.B) {
	tar := rootfsN(b, 5600, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // ~1 GiB
	blob := gzipped(b, tar, 6)
	tar = nil
	e := newConvertEnv(b, ConvertOptions{})
	d := e.pushBlob("app", blob)
	blob = nil
	e.drain()
	rec, err := e.graph.Blob(d)
	if err != nil || rec.Kind != refgraph.KindLayer || len(rec.Layout.Checkpoints) == 0 {
		b.Fatalf("not converted with checkpoints: kind %d, %d checkpoint bytes, %v", rec.Kind, len(rec.Layout.Checkpoints), err)
	}
	b.Logf("%d-byte layer, %d-byte tar, %d checkpoint bytes", rec.Size, rec.Layout.TarSize, len(rec.Layout.Checkpoints))
	var first [64 << 10]byte
	b.ResetTimer()
	for range b.N {
		rc, _, err := e.svc.OpenBlob(context.Background(), "app", d, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		// The gzip header comes at once: wait for deflate output.
		if _, err := io.ReadFull(rc, first[:]); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// gcCPU is the CPU time the garbage collector has taken so far, as the
// runtime estimates it (its workers and assists, and the pauses counted
// on every P).
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// cpuTime is the user and system CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// minflt is the minor page faults this process took so far.
func minflt() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}
