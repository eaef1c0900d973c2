package refgraph

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/opencontainers/go-digest"
)

// A synthetic index for the benchmarks: chunks, blobs and manifests made
// through the Graph's own API, so that it is consistent the way a real one
// is. It is loaded with fsync turned off (a no-op Sync in the file system
// under Pebble), then closed and reopened on the real file system.

type benchShape struct {
	chunks, blobs, manifests, repos int
}

// benchShapeFromEnv: CHUNKYARD_FSCK_BENCH_CHUNKS chunks (default 1M), a
// fifth as many blobs, a fiftieth as many manifests, ten to a repository.
func benchShapeFromEnv(tb testing.TB) benchShape {
	n := 1_000_000
	if s := os.Getenv("CHUNKYARD_FSCK_BENCH_CHUNKS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			tb.Fatalf("CHUNKYARD_FSCK_BENCH_CHUNKS=%q: want a number >= 1000", s)
		}
		n = v
	}
	return benchShape{chunks: n, blobs: n / 5, manifests: n / 50, repos: max(1, n/500)}
}

// benchIndex returns the directory of a synthetic index of the shape
// benchShapeFromEnv gives, and its chunk records: built in a temporary
// directory, or, with CHUNKYARD_FSCK_BENCH_INDEX set, built there once
// and copied.
func benchIndex(b *testing.B) (string, int) {
	s := benchShapeFromEnv(b)
	dir := b.TempDir()
	keep := os.Getenv("CHUNKYARD_FSCK_BENCH_INDEX")
	if keep != "" {
		keep = filepath.Join(keep, strconv.Itoa(s.chunks))
		if n, err := os.ReadFile(filepath.Join(keep, "chunk-records")); err == nil {
			if err := os.CopyFS(dir, os.DirFS(filepath.Join(keep, "index"))); err != nil {
				b.Fatal(err)
			}
			chunks, err := strconv.Atoi(string(n))
			if err != nil {
				b.Fatal(err)
			}
			return dir, chunks
		}
	}
	start := time.Now()
	n := buildBenchIndex(b, dir, s)
	b.Logf("index of %d chunk records, %d blobs, %d manifests, %d repositories built in %v", n, s.blobs+s.manifests, s.manifests, s.repos, time.Since(start).Round(time.Millisecond))
	if keep != "" {
		os.RemoveAll(keep)
		if err := os.CopyFS(filepath.Join(keep, "index"), os.DirFS(dir)); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keep, "chunk-records"), []byte(strconv.Itoa(n)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir, n
}

func benchChunkID(i int) chunkstore.ID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return chunkstore.ID(sha256.Sum256(b[:]))
}

func benchRepo(i int) string { return fmt.Sprintf("org%03d/app%05d", i%97, i) }

// buildBenchIndex writes the index into dir and returns how many chunk
// records it holds. Four writers load it concurrently (sharing fsyncs, as
// pushes do), each deduplicating against its own chunks only; manifests
// go in once every blob is.
func buildBenchIndex(tb testing.TB, dir string, s benchShape) int {
	tb.Helper()
	cache := pebble.NewCache(256 << 20)
	defer cache.Unref()
	fail := newFailure()
	db, err := pebble.Open(dir, &pebble.Options{FS: noSyncFS{vfs.Default}, Cache: cache, Logger: pebbleLogger{slog.Default(), fail}})
	if err != nil {
		tb.Fatal(err)
	}
	g := &Graph{db: db, log: slog.Default(), fail: fail}
	if err := g.init(); err != nil {
		tb.Fatal(err)
	}
	const writers = 4
	loaders := make([]*benchLoader, writers)
	for w := range loaders {
		loaders[w] = &benchLoader{g: g, s: s, w: w, writers: writers, rng: rand.New(rand.NewPCG(1, uint64(w)))}
	}
	for _, phase := range []func(*benchLoader) error{(*benchLoader).blobs, (*benchLoader).manifests} {
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for w, l := range loaders {
			wg.Go(func() { errs[w] = phase(l) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			tb.Fatal(err)
		}
	}
	if err := g.Close(); err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, l := range loaders {
		n += l.next
	}
	return n
}

// benchLoader loads blobs i and manifests j with i, j = w mod writers.
type benchLoader struct {
	g          *Graph
	s          benchShape
	w, writers int
	rng        *rand.Rand
	next       int // chunks created so far
	packOff    int64
}

const benchChunksPerPack = 512

func benchBlobDigest(i int) digest.Digest { return digest.FromString("blob " + strconv.Itoa(i)) }

func (l *benchLoader) newChunk() chunkstore.Chunk {
	i := l.next
	l.next++
	if i%benchChunksPerPack == 0 {
		l.packOff = 0
	}
	stored := uint32(40_000 + l.rng.IntN(90_000))
	loc := &chunkstore.Location{Pack: fmt.Sprintf("%02x%030x", l.w, i/benchChunksPerPack), Offset: l.packOff + 56, StoredLen: stored, RawLen: 2 * stored, Compressed: true}
	l.packOff += 56 + int64(stored)
	return chunkstore.Chunk{ID: benchChunkID(l.w<<40 | i), RawLen: loc.RawLen, Loc: loc}
}

// blobs commits the loader's blobs, a hundred to a batch (the same
// steps as CommitBlob, fewer commits).
func (l *benchLoader) blobs() error {
	refsPerBlob := float64(l.s.chunks-l.s.manifests) / float64(l.s.blobs)
	for from := l.w; from < l.s.blobs; from += 100 * l.writers {
		err := l.g.update(func(t *txn) error {
			for i := from; i < min(l.s.blobs, from+100*l.writers); i += l.writers {
				chunks := l.blobChunks(refsPerBlob)
				var size int64
				for _, c := range chunks {
					size += int64(c.RawLen)
				}
				if err := t.ensureBlob(benchBlobDigest(i), size, chunks); err != nil {
					return err
				}
				if err := t.linkBlob(benchRepo(i%l.s.repos), benchBlobDigest(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// blobChunks returns 2 to 10 chunks, some of them earlier ones.
func (l *benchLoader) blobChunks(refsPerBlob float64) []chunkstore.Chunk {
	k := 2 + l.rng.IntN(9)
	chunks := make([]chunkstore.Chunk, 0, k)
	seen := map[int]bool{}
	for range k {
		if l.next > 0 && l.rng.Float64() > refsPerBlob/6 {
			j := l.rng.IntN(l.next)
			if !seen[j] {
				seen[j] = true
				chunks = append(chunks, chunkstore.Chunk{ID: benchChunkID(l.w<<40 | j), RawLen: 1})
				continue
			}
		}
		seen[l.next] = true
		chunks = append(chunks, l.newChunk())
	}
	return chunks
}

// manifests: ten to a repository, each naming up to ten of its blobs.
func (l *benchLoader) manifests() error {
	for j := l.w; j < l.s.manifests; j += l.writers {
		r := j % l.s.repos
		var refs []digest.Digest
		seen := map[int]bool{}
		for range 10 {
			i := r + l.s.repos*l.rng.IntN(max(1, l.s.blobs/l.s.repos))
			if i < l.s.blobs && !seen[i] {
				seen[i] = true
				refs = append(refs, benchBlobDigest(i))
			}
		}
		m := Manifest{Digest: digest.FromString("manifest " + strconv.Itoa(j)), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1000, Refs: refs}
		if err := l.g.PutManifest(benchRepo(r), m, "v"+strconv.Itoa(j), []chunkstore.Chunk{l.newChunk()}); err != nil {
			return err
		}
	}
	return nil
}

// noSyncFS turns every fsync into a no-op (loading only).
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                             { return nil }
func (noSyncFile) SyncData() error                         { return nil }
func (noSyncFile) SyncTo(int64) (fullSync bool, err error) { return true, nil }

func (fs noSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncFS) Unwrap() vfs.FS { return fs.FS }
