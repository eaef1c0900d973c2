package refgraph

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// BenchmarkCheck measures Check on a synthetic index of
// CHUNKYARD_FSCK_BENCH_CHUNKS chunk records (default 1M, with a fifth as
// many blobs and a fiftieth as many manifests), against the in-memory
// check it replaced (checkInMemory, the baseline), in the same run:
//
//   - check=*: seconds per million chunk records; the peak of the Go heap
//     (live and not yet collected objects) above what it held before
//     (heap-MiB), per million chunk records too, and of the live heap as
//     the collector last found it (live-MiB); check=streaming-16MiB
//     gives the streaming check a quarter of the default memory;
//   - push=*: latency of pushes (CommitBlob of four new chunks, synced)
//     by four writers, with no check running (idle, the baseline) and
//     during each check.
//
// Run it with -benchtime=1x: one check of a million chunks takes seconds.
// CHUNKYARD_FSCK_BENCH_INDEX names a directory where the synthetic index
// is built once and kept; each run works on a copy.
func BenchmarkCheck(b *testing.B) {
	dir, n := benchIndex(b)
	g, err := Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	mchunks := float64(n) / 1e6
	tmp := b.TempDir()
	checks := []struct {
		name  string
		check func() (*CheckReport, error)
	}{
		{"in-memory", func() (*CheckReport, error) { return g.checkInMemory(false) }},
		{"streaming", func() (*CheckReport, error) {
			return g.CheckWith(context.Background(), CheckOptions{TempDir: tmp})
		}},
		{"streaming-16MiB", func() (*CheckReport, error) {
			return g.CheckWith(context.Background(), CheckOptions{TempDir: tmp, Memory: 16 << 20})
		}},
	}
	for _, c := range checks {
		b.Run("check="+c.name, func(b *testing.B) {
			var peak heapPeak
			for b.Loop() {
				peak.start()
				r, err := c.check()
				peak.stop()
				if err != nil || !r.OK() {
					b.Fatalf("check: %+v %v", r, err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/mchunks, "s/Mchunks")
			b.ReportMetric(peak.maxMiB(), "heap-MiB")
			b.ReportMetric(peak.maxMiB()/mchunks, "heap-MiB/Mchunks")
			b.ReportMetric(peak.liveMiB(), "live-MiB")
		})
	}
	var seq atomic.Int64
	b.Run("push=idle", func(b *testing.B) {
		for b.Loop() {
			lat := pushWhile(b, g, &seq, func() { time.Sleep(3 * time.Second) })
			reportLatency(b, lat)
		}
	})
	for _, c := range checks[:2] {
		b.Run("push=during-"+c.name, func(b *testing.B) {
			for b.Loop() {
				lat := pushWhile(b, g, &seq, func() {
					if _, err := c.check(); err != nil {
						b.Fatal(err)
					}
				})
				reportLatency(b, lat)
			}
		})
	}
}

// pushWhile runs four writers pushing new blobs while during runs, and
// returns the latency of the pushes that started while it ran.
func pushWhile(b *testing.B, g *Graph, seq *atomic.Int64, during func()) []time.Duration {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		from, to atomic.Int64 // unix ns of during's start and end
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	to.Store(1<<63 - 1)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				k := seq.Add(1)
				name := "push" + strconv.FormatInt(k, 10)
				chunks := make([]chunkstore.Chunk, 4)
				for i := range chunks {
					loc := &chunkstore.Location{Pack: fmt.Sprintf("push-pack-%d", k/64), Offset: int64(i) * 1000, StoredLen: 900, RawLen: 1000}
					chunks[i] = chunkstore.Chunk{ID: chunkID(name + "/" + strconv.Itoa(i)), RawLen: 1000, Loc: loc}
				}
				t0 := time.Now()
				if err := g.CommitBlob("bench/pushes", digest.FromString(name), 4000, chunks); err != nil {
					b.Error(err)
					return
				}
				if t0.UnixNano() >= from.Load() && t0.UnixNano() < to.Load() {
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // writers going
	from.Store(time.Now().UnixNano())
	during()
	to.Store(time.Now().UnixNano())
	stop.Store(true)
	wg.Wait()
	return lat
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		b.Fatal("no push started during the window")
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(float64(len(lat)), "pushes")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// heapPeak samples the Go heap every few milliseconds while a check runs
// and keeps the largest rise over what the heap held (after a GC) before:
// of the heap's objects, live or not collected yet (max), and of the
// live heap as the last collection found it (live).
type heapPeak struct {
	done      chan struct{}
	wg        sync.WaitGroup
	max, live atomic.Uint64
}

func heapNow() (objects, live uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

func (p *heapPeak) start() {
	runtime.GC()
	base, baseLive := heapNow()
	p.done = make(chan struct{})
	p.wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			h, l := heapNow()
			if h > base && h-base > p.max.Load() {
				p.max.Store(h - base)
			}
			if l > baseLive && l-baseLive > p.live.Load() {
				p.live.Store(l - baseLive)
			}
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	})
}

func (p *heapPeak) stop() {
	close(p.done)
	p.wg.Wait()
}

func (p *heapPeak) maxMiB() float64  { return float64(p.max.Load()) / (1 << 20) }
func (p *heapPeak) liveMiB() float64 { return float64(p.live.Load()) / (1 << 20) }
