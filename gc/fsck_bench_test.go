package gc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// BenchmarkFsckPacks measures Fsck's pack check (not the index recount,
// which refgraph's BenchmarkCheck measures) on an index of
// CHUNKYARD_FSCK_BENCH_CHUNKS live chunk records (default 1M) in packs of
// 512, against a synthetic store whose trailers agree with the index:
// the streaming check (sorted runs, default memory) against the in-memory
// one it replaced (packsInMemory, the baseline), in the same run. It
// reports seconds per million chunk records and the peak of the Go heap
// above what it held before: of its objects, live and not yet collected
// (heap-MiB), and of the live heap as the collector last found it
// (live-MiB).
// CHUNKYARD_FSCK_BENCH_INDEX names a directory where the index is built
// once and kept. Run it with -benchtime=1x.
func BenchmarkFsckPacks(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("CHUNKYARD_FSCK_BENCH_CHUNKS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < synthPerPack {
			b.Fatalf("CHUNKYARD_FSCK_BENCH_CHUNKS=%q", s)
		}
	}
	store := &synthStore{packs: n / synthPerPack}
	n = store.packs * synthPerPack
	g := synthIndex(b, store)
	mchunks := float64(n) / 1e6
	tmp := b.TempDir()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		run  func() (*FsckReport, error)
	}{
		{"in-memory", func() (*FsckReport, error) { return packsInMemory(ctx, g, store) }},
		{"streaming", func() (*FsckReport, error) {
			r := &FsckReport{}
			snap := g.Snapshot()
			defer snap.Close()
			pc := &packCheck{g: g, s: store, snap: snap, o: FsckOptions{Memory: refgraph.DefaultCheckMemory, Readers: 8}, dir: tmp, r: r}
			if err := pc.chunksInPacks(ctx); err != nil {
				return nil, err
			}
			return r, pc.unknownPacks(ctx)
		}},
	} {
		b.Run("packs="+c.name, func(b *testing.B) {
			var peak heapPeak
			for b.Loop() {
				peak.start()
				r, err := c.run()
				peak.stop()
				if err != nil || r.PackProblemCount != 0 || r.PacksChecked != store.packs || r.UnknownPacks != 0 {
					b.Fatalf("%+v %v", r, err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/mchunks, "s/Mchunks")
			b.ReportMetric(peak.maxMiB(), "heap-MiB")
			b.ReportMetric(peak.liveMiB(), "live-MiB")
		})
	}
}

// packsInMemory is Fsck's pack check as it was before it streamed (commit
// 883e5d9, without the index recount), kept as the benchmark's baseline:
// it holds every live chunk record in a map by pack.
func packsInMemory(ctx context.Context, g *refgraph.Graph, s Store) (*FsckReport, error) {
	r := &FsckReport{Index: &refgraph.CheckReport{}}
	inBackend := map[string]bool{}
	if err := s.ListPacks(ctx, func(name string, _ int64) error {
		inBackend[name] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("fsck: listing packs: %w", err)
	}
	open := map[string]bool{}
	for _, p := range s.OpenPacks() {
		open[p] = true
	}
	byPack := map[string][]refgraph.Chunk{}
	if err := g.Chunks(func(c refgraph.Chunk) error {
		if c.Refs > 0 {
			byPack[c.Loc.Pack] = append(byPack[c.Loc.Pack], c)
		}
		return ctx.Err()
	}); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	for pack, chunks := range byPack {
		if open[pack] {
			continue
		}
		if !inBackend[pack] {
			r.packProblem("pack %s: %d live chunks, but the backend has no such pack", pack, len(chunks))
			continue
		}
		entries, err := s.ReadTrailer(ctx, pack)
		if err != nil {
			r.packProblem("pack %s: %v", pack, err)
			continue
		}
		r.PacksChecked++
		at := make(map[int64]chunkstore.PackEntry, len(entries))
		for _, e := range entries {
			at[e.Loc.Offset] = e
		}
		for _, c := range chunks {
			if e, ok := at[c.Loc.Offset]; !ok || e.ID != c.ID || e.Loc != c.Loc {
				r.packProblem("chunk %s: no matching record at %s+%d", c.ID, pack, c.Loc.Offset)
			}
		}
	}
	if err := g.Packs(func(p refgraph.Pack) error {
		delete(inBackend, p.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	r.UnknownPacks = len(inBackend)
	return r, nil
}

// synthStore is a backend of packs that exist only as trailers: pack p
// holds chunks p*synthPerPack and up, laid out by synthEntry.
type synthStore struct{ packs int }

const synthPerPack = 512

func synthPack(p int) string { return fmt.Sprintf("%032x", p) }

func synthEntry(p, j int) chunkstore.PackEntry {
	i := p*synthPerPack + j
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	stored := uint32(40_000 + i%9_000)
	return chunkstore.PackEntry{ID: chunkstore.ID(sha256.Sum256(b[:])), Loc: chunkstore.Location{
		Pack: synthPack(p), Offset: 8 + 56 + int64(j)*(56+49_000), StoredLen: stored, RawLen: 2 * stored, Compressed: true}}
}

func (s *synthStore) ListPacks(ctx context.Context, fn func(string, int64) error) error {
	for p := range s.packs {
		if err := fn(synthPack(p), 1); err != nil {
			return err
		}
	}
	return nil
}

func (s *synthStore) ReadTrailer(ctx context.Context, pack string) ([]chunkstore.PackEntry, error) {
	p, err := strconv.ParseInt(pack, 16, 64)
	if err != nil || int(p) >= s.packs {
		return nil, fmt.Errorf("no pack %s", pack)
	}
	out := make([]chunkstore.PackEntry, synthPerPack)
	for j := range out {
		out[j] = synthEntry(int(p), j)
	}
	return out, nil
}

var errSynth = errors.New("not in the synthetic store")

func (s *synthStore) Rewrite(context.Context, []chunkstore.ChunkRead) ([]chunkstore.Chunk, error) {
	return nil, errSynth
}
func (s *synthStore) DeletePack(context.Context, string) error       { return errSynth }
func (s *synthStore) OpenPacks() []string                            { return nil }
func (s *synthStore) SealOpen(context.Context, string) (bool, error) { return false, errSynth }
func (s *synthStore) PackSize() int64                                { return 64 << 20 }

// synthIndex returns an index of the store's chunks, a blob per pack
// (built, or with CHUNKYARD_FSCK_BENCH_INDEX set, built there once and
// copied).
func synthIndex(b *testing.B, s *synthStore) *refgraph.Graph {
	dir := b.TempDir()
	keep := os.Getenv("CHUNKYARD_FSCK_BENCH_INDEX")
	if keep != "" {
		keep = filepath.Join(keep, fmt.Sprintf("packs-%d", s.packs))
		if _, err := os.Stat(filepath.Join(keep, "done")); err == nil {
			if err := os.CopyFS(dir, os.DirFS(filepath.Join(keep, "index"))); err != nil {
				b.Fatal(err)
			}
			return openSynth(b, dir)
		}
	}
	start := time.Now()
	g, err := refgraph.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	for p := range s.packs {
		chunks := make([]chunkstore.Chunk, synthPerPack)
		for j := range chunks {
			e := synthEntry(p, j)
			chunks[j] = chunkstore.Chunk{ID: e.ID, RawLen: e.Loc.RawLen, Loc: &e.Loc}
		}
		if err := g.CommitBlob("bench/packs", digest.FromString(synthPack(p)), 1, chunks); err != nil {
			b.Fatal(err)
		}
	}
	if err := g.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("index of %d chunk records built in %v", s.packs*synthPerPack, time.Since(start).Round(time.Millisecond))
	if keep != "" {
		os.RemoveAll(keep)
		if err := os.CopyFS(filepath.Join(keep, "index"), os.DirFS(dir)); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keep, "done"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return openSynth(b, dir)
}

func openSynth(b *testing.B, dir string) *refgraph.Graph {
	g, err := refgraph.Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

// heapPeak samples the Go heap while a check runs and keeps the largest
// rise over what it held (after a GC) before.
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
