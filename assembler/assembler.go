// Package assembler owns the pull path: it turns a blob's recipe (its
// ordered chunk list from the index) back into the blob's exact bytes,
// streaming, reading only the chunks a range needs, and verifying the
// blob's digest on the way so a corrupt store is never served silently.
package assembler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// ErrDigestMismatch is returned by a full read whose bytes do not hash to
// the blob's digest. The caller must abort the response.
var ErrDigestMismatch = errors.New("assembler: assembled blob does not match its digest")

// Locator finds where a chunk is stored (the index).
type Locator interface {
	Chunk(id chunkstore.ID) (refgraph.Chunk, error)
}

// ChunkReader reads verified chunks, several at a time so that it can
// coalesce neighbours into one request (the chunk store).
type ChunkReader interface {
	ReadChunks(ctx context.Context, reqs []chunkstore.ChunkRead, dsts [][]byte) ([][]byte, error)
}

// batchBytes bounds the raw bytes of the chunks one ReadChunks call asks
// for: the unit of request coalescing, and of a reader's read-ahead.
const batchBytes = 8 << 20

// Blob is the recipe of a blob: its digest, size and chunks in order, and
// for a layer stored split, how the chunks make it.
type Blob struct {
	Digest digest.Digest
	Size   int64
	Chunks []refgraph.ChunkRef
	Layout *refgraph.Layout // nil: opaque, the chunks are the blob
}

// Assembler rebuilds blobs from chunks.
type Assembler struct {
	loc      Locator
	chunks   ChunkReader
	log      *slog.Logger
	prefetch int
	bufs     sync.Pool             // *[]byte chunk buffers, handed back by readers
	layers   *chunkstore.FileCache // encoded layers; nil: none
	encodes  chan struct{}         // semaphore of encoding goroutines running
	par      int                   // encoding goroutines one layer encode may run
	badPlans sync.Map              // digest -> true: checkpoints that failed

	ctx     context.Context // ends at Close: stops fills
	stop    context.CancelFunc
	wg      sync.WaitGroup // fills running
	fillsMu sync.Mutex
	fills   map[string]*fill // by layer cache key
	stats   layerStats
}

// Options configure an Assembler.
type Options struct {
	// Prefetch is how many chunks a reader keeps decoded ahead of its
	// client (default 2).
	Prefetch int
	// LayerCache keeps encoded layers; nil: none.
	LayerCache *chunkstore.FileCache
	// MaxEncodes bounds the goroutines encoding layers, all layers
	// together, so that many cold pulls cannot exhaust CPU or memory: a
	// layer encode needs one to start and takes more, up to
	// EncodeParallelism, only while they are free; more layers wait
	// (default 2 per CPU).
	MaxEncodes int
	// EncodeParallelism is how many goroutines one layer encode may run:
	// segments of a layer with checkpoints, blocks of pgzip, pigz and
	// zstd (default GOMAXPROCS).
	EncodeParallelism int
	Logger            *slog.Logger
}

// New returns an assembler reading chunk locations from loc and chunk
// bytes from chunks.
func New(loc Locator, chunks ChunkReader, opts Options) *Assembler {
	if opts.Prefetch <= 0 {
		opts.Prefetch = 2
	}
	if opts.MaxEncodes <= 0 {
		opts.MaxEncodes = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.EncodeParallelism <= 0 {
		opts.EncodeParallelism = runtime.GOMAXPROCS(0)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Assembler{loc: loc, chunks: chunks, log: opts.Logger, prefetch: opts.Prefetch,
		layers: opts.LayerCache, encodes: make(chan struct{}, opts.MaxEncodes), par: opts.EncodeParallelism,
		ctx: ctx, stop: stop, fills: map[string]*fill{}}
}

// Close stops the layer encodes running in the background for the cache
// and waits for them; readers of their layers get an error.
func (a *Assembler) Close() {
	a.stop()
	a.wg.Wait()
}

// LayerStats counts how layers were served.
type LayerStats struct {
	Hits       int64         // served from the layer cache
	Misses     int64         // encoded (a fill or a direct encode started)
	Joined     int64         // pulls that joined a fill already running
	Ranges     int64         // ranges encoded from a checkpoint before them, for themselves
	BadEntries int64         // cache entries found wrong and dropped
	BadPlans   int64         // layers whose checkpoints failed (encoded from the start since)
	EncodeTime time.Duration // spent encoding, all encodes together (wall time)
}

type layerStats struct {
	hits, misses, joined, ranges, badEntries, badPlans, encodeNanos atomic.Int64
}

// Stats returns the layer counters since New.
func (a *Assembler) Stats() LayerStats {
	return LayerStats{Hits: a.stats.hits.Load(), Misses: a.stats.misses.Load(), Joined: a.stats.joined.Load(),
		Ranges: a.stats.ranges.Load(), BadEntries: a.stats.badEntries.Load(), BadPlans: a.stats.badPlans.Load(),
		EncodeTime: time.Duration(a.stats.encodeNanos.Load())}
}

// Open returns a reader of length bytes of b starting at off. A read of
// the whole blob is verified against b.Digest: its last Read returns
// ErrDigestMismatch instead of io.EOF if the bytes are wrong. A range is
// verified chunk by chunk instead: each chunk against its id (see
// verifyMode). An opaque blob's range reads only the chunks it overlaps; a
// layer is re-encoded (see openLayer). Close the reader to stop its
// prefetching.
func (a *Assembler) Open(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || off+length > b.Size {
		return nil, fmt.Errorf("assembler: range %d+%d outside blob %s of %d bytes", off, length, b.Digest, b.Size)
	}
	if err := b.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("assembler: %w", err)
	}
	if b.Layout != nil {
		return a.openLayer(ctx, b, off, length)
	}
	if off == 0 && length == b.Size {
		return newVerifier(a.openChunks(ctx, b.Digest, b.Chunks, off, length, verifyDigest), b.Digest, b.Size), nil
	}
	return a.openChunks(ctx, b.Digest, b.Chunks, off, length, verifyChunks), nil
}

// verifyMode says what checks a read of stored bytes for wrong content.
type verifyMode bool

const (
	// verifyChunks: each chunk's content against its id (sha256), and a
	// tar's payloads against their crc64s. For reads no digest covers: a
	// range, a layer's tar.
	verifyChunks verifyMode = true
	// verifyDigest: the blob's digest over the whole read, checked by the
	// caller, is the content check; chunks keep only their pack records'
	// checks (CRC-32C of the stored bytes, id and lengths in the header),
	// which catch bit rot before a byte is served. A whole pull hashes its
	// bytes once instead of three times: the chunk hashes and crc64s were
	// about 7% of a parallel cold pull's CPU.
	verifyDigest verifyMode = false
)

// openChunks streams length bytes from off of the concatenated chunks,
// checked as v says, read ahead in batches.
func (a *Assembler) openChunks(ctx context.Context, d digest.Digest, chunks []refgraph.ChunkRef, off, length int64, v verifyMode) *reader {
	r := &reader{blob: d, remaining: length, bufs: &a.bufs}
	// Find the first chunk of the range.
	first, skip := 0, off
	for first < len(chunks) && skip >= int64(chunks[first].RawLen) {
		skip -= int64(chunks[first].RawLen)
		first++
	}
	r.skip = skip
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.results = make(chan result, a.prefetch)
	go a.produce(ctx, d, chunks, first, off+length, v, r.results)
	return r
}

// bufRound is the granularity of pooled chunk buffers.
const bufRound = 1 << 20

type result struct {
	data []byte
	buf  *[]byte // data's buffer, to hand back to the pool
	err  error
}

// produce reads the chunks from first on until end (a blob offset), in
// batches, and sends them in order.
func (a *Assembler) produce(ctx context.Context, d digest.Digest, chunks []refgraph.ChunkRef, first int, end int64, v verifyMode, out chan<- result) {
	defer close(out)
	pos := int64(0)
	for i := 0; i < first; i++ {
		pos += int64(chunks[i].RawLen)
	}
	var (
		reqs []chunkstore.ChunkRead
		bufs []*[]byte
		dsts [][]byte
	)
	for i := first; i < len(chunks) && pos < end; {
		// The next batch: at least one chunk, at most batchBytes.
		reqs, bufs, dsts = reqs[:0], bufs[:0], dsts[:0]
		var batch int64
		var err error
		for ; i < len(chunks) && pos < end && (len(reqs) == 0 || batch+int64(chunks[i].RawLen) <= batchBytes); i++ {
			c := chunks[i]
			var rec refgraph.Chunk
			if rec, err = a.loc.Chunk(c.ID); err != nil {
				err = fmt.Errorf("assembler: blob %s chunk %d (%s): %w", d, i, c.ID, err)
				break
			}
			if rec.Loc.RawLen != c.RawLen {
				err = fmt.Errorf("assembler: blob %s chunk %d (%s) is %d bytes, recipe says %d: %w",
					d, i, c.ID, rec.Loc.RawLen, c.RawLen, chunkstore.ErrCorrupt)
				break
			}
			reqs = append(reqs, chunkstore.ChunkRead{ID: c.ID, Loc: rec.Loc, SkipHash: v == verifyDigest})
			buf := a.getBuf(int(c.RawLen))
			bufs, dsts = append(bufs, buf), append(dsts, *buf)
			batch += int64(c.RawLen)
			pos += int64(c.RawLen)
		}
		var data [][]byte
		if err == nil {
			data, err = a.chunks.ReadChunks(ctx, reqs, dsts)
			if err != nil {
				err = fmt.Errorf("assembler: blob %s: %w", d, err)
			}
		}
		// ReadChunks returns each chunk at its indexed length, checked
		// above against the recipe.
		for k := range reqs {
			if err != nil {
				break
			}
			select {
			case out <- result{data: data[k], buf: bufs[k]}:
				bufs[k] = nil
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		for _, buf := range bufs {
			if buf != nil {
				a.bufs.Put(buf)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("chunk read failed", "blob", d, "err", err)
			}
			select {
			case out <- result{err: err}:
			case <-ctx.Done():
			}
			return
		}
	}
}

// getBuf returns a pooled buffer of at least n bytes' capacity.
func (a *Assembler) getBuf(n int) *[]byte {
	buf, _ := a.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	if cap(*buf) < n {
		// Round up so that a pooled buffer fits most later chunks.
		*buf = make([]byte, 0, (n+bufRound-1)/bufRound*bufRound)
	}
	return buf
}

// reader streams chunks from a producer, dropping what is outside its
// range.
type reader struct {
	blob      digest.Digest
	remaining int64
	skip      int64   // bytes to drop from the next chunk
	buf       []byte  // unread part of the current chunk
	cur       *[]byte // the current chunk's pooled buffer
	bufs      *sync.Pool
	results   chan result
	cancel    context.CancelFunc
	err       error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.buf) == 0 {
		r.release()
		if r.remaining == 0 {
			r.err = io.EOF
			return 0, r.err
		}
		res, ok := <-r.results
		if !ok {
			r.err = fmt.Errorf("assembler: blob %s ended %d bytes early: %w", r.blob, r.remaining, chunkstore.ErrCorrupt)
			return 0, r.err
		}
		r.cur = res.buf
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		data := res.data[min(r.skip, int64(len(res.data))):]
		r.skip = 0
		if int64(len(data)) > r.remaining {
			data = data[:r.remaining]
		}
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.remaining -= int64(n)
	return n, nil
}

// release hands the current chunk's buffer back to the pool.
func (r *reader) release() {
	if r.cur != nil {
		r.bufs.Put(r.cur)
		r.cur, r.buf = nil, nil
	}
}

func (r *reader) Close() error {
	r.cancel()
	r.release()
	for res := range r.results { // let the producer exit
		r.bufs.Put(res.buf)
	}
	if r.err == nil {
		r.err = errors.New("assembler: reader closed")
	}
	return nil
}
