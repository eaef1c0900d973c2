// Package assembler owns the pull path: it turns a blob's recipe (its
// ordered chunk list from the index) back into the blob's exact bytes,
// streaming, reading only the chunks a range needs, and verifying the
// blob's digest on the way so a corrupt store is never served silently.
package assembler

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"

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

// Blob is the recipe of a blob: its digest, size and chunks in order.
type Blob struct {
	Digest digest.Digest
	Size   int64
	Chunks []refgraph.ChunkRef
}

// Assembler rebuilds blobs from chunks.
type Assembler struct {
	loc      Locator
	chunks   ChunkReader
	log      *slog.Logger
	prefetch int
	bufs     sync.Pool // *[]byte chunk buffers, handed back by readers
}

// New returns an assembler reading chunk locations from loc and chunk
// bytes from chunks. prefetch is how many chunks one reader decodes ahead
// of the client (0: default 2).
func New(loc Locator, chunks ChunkReader, prefetch int, log *slog.Logger) *Assembler {
	if prefetch <= 0 {
		prefetch = 2
	}
	if log == nil {
		log = slog.Default()
	}
	return &Assembler{loc: loc, chunks: chunks, log: log, prefetch: prefetch}
}

// Open returns a reader of length bytes of b starting at off. Chunks wholly
// outside the range are not read. A read of the whole blob is verified
// against b.Digest: its last Read returns ErrDigestMismatch instead of
// io.EOF if the bytes are wrong. Every chunk is verified against its id
// whatever the range. Close the reader to stop its prefetching.
func (a *Assembler) Open(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || off+length > b.Size {
		return nil, fmt.Errorf("assembler: range %d+%d outside blob %s of %d bytes", off, length, b.Digest, b.Size)
	}
	r := &reader{blob: b, off: off, remaining: length, bufs: &a.bufs}
	if off == 0 && length == b.Size {
		if err := b.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("assembler: %w", err)
		}
		r.verify = b.Digest.Algorithm().Hash()
	}
	// Find the first chunk of the range.
	first, skip := 0, off
	for first < len(b.Chunks) && skip >= int64(b.Chunks[first].RawLen) {
		skip -= int64(b.Chunks[first].RawLen)
		first++
	}
	r.skip = skip
	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.results = make(chan result, a.prefetch)
	go a.produce(ctx, b, first, off+length, r.results)
	return r, nil
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
func (a *Assembler) produce(ctx context.Context, b Blob, first int, end int64, out chan<- result) {
	defer close(out)
	pos := int64(0)
	for i := 0; i < first; i++ {
		pos += int64(b.Chunks[i].RawLen)
	}
	var (
		reqs []chunkstore.ChunkRead
		bufs []*[]byte
		dsts [][]byte
	)
	for i := first; i < len(b.Chunks) && pos < end; {
		// The next batch: at least one chunk, at most batchBytes.
		reqs, bufs, dsts = reqs[:0], bufs[:0], dsts[:0]
		var batch int64
		var err error
		for ; i < len(b.Chunks) && pos < end && (len(reqs) == 0 || batch+int64(b.Chunks[i].RawLen) <= batchBytes); i++ {
			c := b.Chunks[i]
			var rec refgraph.Chunk
			if rec, err = a.loc.Chunk(c.ID); err != nil {
				err = fmt.Errorf("assembler: blob %s chunk %d (%s): %w", b.Digest, i, c.ID, err)
				break
			}
			if rec.Loc.RawLen != c.RawLen {
				err = fmt.Errorf("assembler: blob %s chunk %d (%s) is %d bytes, recipe says %d: %w",
					b.Digest, i, c.ID, rec.Loc.RawLen, c.RawLen, chunkstore.ErrCorrupt)
				break
			}
			reqs = append(reqs, chunkstore.ChunkRead{ID: c.ID, Loc: rec.Loc})
			buf := a.getBuf(int(c.RawLen))
			bufs, dsts = append(bufs, buf), append(dsts, *buf)
			batch += int64(c.RawLen)
			pos += int64(c.RawLen)
		}
		var data [][]byte
		if err == nil {
			data, err = a.chunks.ReadChunks(ctx, reqs, dsts)
			if err != nil {
				err = fmt.Errorf("assembler: blob %s: %w", b.Digest, err)
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
				a.log.Error("chunk read failed", "blob", b.Digest, "err", err)
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

type reader struct {
	blob      Blob
	off       int64
	remaining int64
	skip      int64   // bytes to drop from the next chunk
	buf       []byte  // unread part of the current chunk
	cur       *[]byte // the current chunk's pooled buffer
	bufs      *sync.Pool
	results   chan result
	cancel    context.CancelFunc
	verify    hash.Hash
	err       error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.buf) == 0 {
		r.release()
		if r.remaining == 0 {
			r.err = r.finish()
			return 0, r.err
		}
		res, ok := <-r.results
		if !ok {
			r.err = fmt.Errorf("assembler: blob %s ended %d bytes early: %w", r.blob.Digest, r.remaining, chunkstore.ErrCorrupt)
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
	if r.verify != nil {
		r.verify.Write(p[:n])
	}
	r.buf = r.buf[n:]
	r.remaining -= int64(n)
	return n, nil
}

func (r *reader) finish() error {
	if r.verify == nil {
		return io.EOF
	}
	got := digest.NewDigestFromBytes(r.blob.Digest.Algorithm(), r.verify.Sum(nil))
	if got != r.blob.Digest {
		return fmt.Errorf("%w: %s assembled as %s", ErrDigestMismatch, r.blob.Digest, got)
	}
	return io.EOF
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
