package assembler

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// ChunkReaderAt reads any byte range of a chunk list (a split layer's
// content or header stream) at random: only the chunks a read overlaps
// are fetched (verified against their ids by the ChunkReader), and the
// last few are kept so
// that the many small reads of a parser (debug/buildinfo over a binary)
// cost one fetch per chunk. It counts the chunk bytes it fetched. It is
// safe for concurrent use; ctx bounds every read.
type ChunkReaderAt struct {
	a      *Assembler
	ctx    context.Context
	d      digest.Digest
	chunks []refgraph.ChunkRef
	starts []int64 // starts[i]: offset of chunks[i]; starts[len] = size

	mu      sync.Mutex
	fetched int64
	cache   []cachedChunk // most recent last
}

type cachedChunk struct {
	i    int
	data []byte
}

// readAtCache is how many chunks a ChunkReaderAt keeps (at most 2 MiB
// each).
const readAtCache = 4

// ChunkReaderAt returns a ChunkReaderAt over chunks, which belong to the
// blob d (named in errors).
func (a *Assembler) ChunkReaderAt(ctx context.Context, d digest.Digest, chunks []refgraph.ChunkRef) *ChunkReaderAt {
	starts := make([]int64, len(chunks)+1)
	for i, c := range chunks {
		starts[i+1] = starts[i] + int64(c.RawLen)
	}
	return &ChunkReaderAt{a: a, ctx: ctx, d: d, chunks: chunks, starts: starts}
}

// Size is the length of the chunks together.
func (r *ChunkReaderAt) Size() int64 { return r.starts[len(r.chunks)] }

// StoreBytesRead is the chunk bytes fetched so far.
func (r *ChunkReaderAt) StoreBytesRead() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetched
}

// chunkAt is the index of the chunk holding offset off (< Size).
func (r *ChunkReaderAt) chunkAt(off int64) int {
	return sort.Search(len(r.chunks), func(i int) bool { return r.starts[i+1] > off }) // first chunk ending after off
}

// ReadAt implements io.ReaderAt.
func (r *ChunkReaderAt) ReadAt(p []byte, off int64) (int, error) {
	size := r.Size()
	if off < 0 {
		return 0, fmt.Errorf("assembler: blob %s: negative offset %d", r.d, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	want := p
	if rest := size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	n := 0
	for n < len(want) {
		pos := off + int64(n)
		i := r.chunkAt(pos)
		if data, ok := r.cached(i); ok {
			n += copy(want[n:], data[pos-r.starts[i]:])
			continue
		}
		// Fetch from chunk i through the chunk holding the read's last
		// byte, not yet cached, in one stream (the store coalesces it).
		last := r.chunkAt(off + int64(len(want)) - 1)
		for last > i {
			if _, ok := r.cached(last); !ok {
				break
			}
			last--
		}
		k, err := r.fetch(i, last, want[n:], pos)
		n += k
		if err != nil {
			return n, err
		}
	}
	if len(want) < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fetch reads chunks first..last whole, copies what dst needs from pos on,
// and caches the last chunk read.
func (r *ChunkReaderAt) fetch(first, last int, dst []byte, pos int64) (int, error) {
	span := r.starts[last+1] - r.starts[first]
	rc := r.a.openChunks(r.ctx, r.d, r.chunks[first:last+1], 0, span, verifyChunks)
	defer rc.Close()
	n := 0
	for i := first; i <= last; i++ {
		data := make([]byte, r.chunks[i].RawLen)
		if _, err := io.ReadFull(rc, data); err != nil {
			return n, fmt.Errorf("assembler: blob %s: reading chunk %d: %w", r.d, i, err)
		}
		r.mu.Lock()
		r.fetched += int64(len(data))
		r.mu.Unlock()
		if n < len(dst) {
			// dst continues at pos+n, which is in chunk i.
			n += copy(dst[n:], data[pos+int64(n)-r.starts[i]:])
		}
		if i == last || i == first {
			r.keep(i, data)
		}
	}
	return n, nil
}

func (r *ChunkReaderAt) cached(i int) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := len(r.cache) - 1; k >= 0; k-- {
		if r.cache[k].i == i {
			c := r.cache[k]
			r.cache = append(append(r.cache[:k:k], r.cache[k+1:]...), c)
			return c.data, true
		}
	}
	return nil, false
}

func (r *ChunkReaderAt) keep(i int, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) == readAtCache {
		r.cache = append(r.cache[:0:0], r.cache[1:]...)
	}
	r.cache = append(r.cache, cachedChunk{i: i, data: data})
}
