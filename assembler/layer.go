package assembler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// A layer stored split is rebuilt by a pipeline: the header stream's and
// the content stream's chunks, zipped back into the tar (tarsplit), then
// compressed as its recipe says (codec), verified against the digest on
// the way out. Encoding is slow (stdlib gzip level 6 runs at ~36 MB/s a
// core), so:
//
//   - A hot layer is served from the layer cache. An entry this process
//     has not checked yet (one found on disk at start) is hashed whole
//     before anything of it is served, and dropped if wrong (the layer is
//     then encoded again); a whole read is also hashed as it is served,
//     and a mismatch (an entry gone bad since) drops the entry and ends
//     the read with ErrDigestMismatch, never io.EOF.
//   - A cold layer is encoded once, by a fill (fill.go), into a new cache
//     entry as fast as it can, verifying it, while any number of pulls of
//     that layer read the entry as it grows, each at its own pace. A slow
//     client holds no encode slot, and concurrent misses of one layer cost
//     one encode.
//   - A layer whose recipe has checkpoints (the conversion recorded them)
//     is encoded in segments on several cores (codec.Plan): the fill holds
//     one slot of Options.MaxEncodes and takes more, up to
//     Options.EncodeParallelism, while they are free; segments are written
//     in order as they finish. Its tar is zipped once, in order, and each
//     segment gets its part (with the history before it and the lookahead
//     after it). pgzip, pigz and zstd encoders take extra slots for their
//     own block goroutines the same way.
//   - A whole layer's encode checks the layer's digest over its output
//     and nothing else for content (verifyDigest: no chunk sha256, no
//     payload crc64; the pack records' CRC-32Cs still catch bit rot), so
//     every reader of a fill, a range too, ends only once the fill has
//     verified the whole layer; bytes flow before that.
//   - A range of a cold layer with checkpoints that starts past its first
//     segment, and that no running fill has reached, is encoded for its
//     reader alone from the last checkpoint before it (the tar zipped
//     from there: tarsplit.JoinFrom). Its chunks are verified against
//     their ids and its payloads against their crc64s (verifyChunks); the
//     digest can only be checked by a whole read. Other ranges join the
//     fill.
//   - Checkpoints that fail (a segment comes out of another length, or
//     the whole layer not to its digest) are not used again by this
//     process: the layer is encoded from its start, as without them.
//   - Without a cache the encode streams to the reader at its pace.

// LayerCacheKey names a layer in the layer cache: "sha256-<hex>".
func LayerCacheKey(d digest.Digest) string { return string(d.Algorithm()) + "-" + d.Encoded() }

// openLayer returns length bytes from off of the layer b.
func (a *Assembler) openLayer(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if r, ok := a.openCached(b, off, length); ok {
		a.stats.hits.Add(1)
		return r, nil
	}
	if off != 0 || length != b.Size {
		if p, _ := a.layerPlan(b); p != nil && p.StartFor(off) > 0 && !a.fillReached(b, p.Offset(p.StartFor(off))) {
			return a.openRange(ctx, b, off, length)
		}
	}
	if a.layers == nil {
		return a.openDirect(ctx, b, off, length)
	}
	return a.joinFill(b).reader(ctx, off, length), nil
}

// fillReached tells whether a fill of b is running and has written up to
// off.
func (a *Assembler) fillReached(b Blob, off int64) bool {
	a.fillsMu.Lock()
	defer a.fillsMu.Unlock()
	fl, ok := a.fills[LayerCacheKey(b.Digest)]
	return ok && fl.written >= off
}

// openRange encodes layer b from the checkpoint before off, for this
// reader alone, and serves length bytes from off.
func (a *Assembler) openRange(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if err := a.acquireEncode(ctx); err != nil {
		return nil, err
	}
	r, start, err := a.encodeFrom(ctx, b, off, verifyChunks, a.releaseEncode)
	if err != nil {
		return nil, err
	}
	a.stats.ranges.Add(1)
	// Chunks are verified; the digest only by a whole read.
	if _, err := io.CopyN(io.Discard, r, off-start); err != nil {
		r.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(r, length), r}, nil
}

// openCached serves a range of layer b from the layer cache, if there.
func (a *Assembler) openCached(b Blob, off, length int64) (io.ReadCloser, bool) {
	key := LayerCacheKey(b.Digest)
	e, ok := a.layers.Open(key)
	if !ok {
		return nil, false
	}
	if e.Size != b.Size {
		e.Close()
		a.badEntry(key, fmt.Errorf("cached %d bytes, layer is %d", e.Size, b.Size))
		return nil, false
	}
	if !e.Verified {
		if err := checkFile(e.File, b.Digest, b.Size); err != nil {
			e.Close()
			a.badEntry(key, err)
			return nil, false
		}
		a.layers.MarkVerified(key)
	}
	if off == 0 && length == b.Size {
		return &cachedLayer{verifier: newVerifier(e.File, b.Digest, b.Size), a: a, key: key}, true
	}
	return sectionCloser(e.File, off, length), true
}

// badEntry drops a cache entry that is not what it must be.
func (a *Assembler) badEntry(key string, err error) {
	a.stats.badEntries.Add(1)
	a.log.Error("layer cache entry is wrong; dropped", "entry", key, "err", err)
	a.layers.Drop(key)
}

// checkFile hashes all of f against d and size.
func checkFile(f *os.File, d digest.Digest, size int64) error {
	v := newVerifier(io.NopCloser(io.NewSectionReader(f, 0, size+1)), d, size)
	_, err := io.Copy(io.Discard, v)
	return err
}

// cachedLayer serves a whole cached layer, hashing it on the way: at the
// end the entry is known good (MarkVerified) or dropped.
type cachedLayer struct {
	*verifier
	a   *Assembler
	key string
}

func (c *cachedLayer) Read(p []byte) (int, error) {
	n, err := c.verifier.Read(p)
	switch {
	case err == io.EOF:
		c.a.layers.MarkVerified(c.key)
	case errors.Is(err, ErrDigestMismatch):
		c.a.badEntry(c.key, err)
	}
	return n, err
}

// openDirect encodes layer b for this reader alone, at its pace (no
// layer cache). A range encodes from the start, or from the checkpoint
// before it, and skips to it.
func (a *Assembler) openDirect(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if off != 0 || length != b.Size {
		return a.openRange(ctx, b, off, length)
	}
	if err := a.acquireEncode(ctx); err != nil {
		return nil, err
	}
	a.stats.misses.Add(1)
	return a.encodeLayer(ctx, b, a.releaseEncode)
}

// acquireEncode takes an encode slot, waiting while all are busy.
func (a *Assembler) acquireEncode(ctx context.Context) error {
	select {
	case a.encodes <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Assembler) releaseEncode() { <-a.encodes }

// encodeSlots lends an encode the free slots for its extra goroutines
// (codec.Slots).
type encodeSlots struct{ a *Assembler }

func (s encodeSlots) TryAcquire() bool {
	select {
	case s.a.encodes <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s encodeSlots) Release() { s.a.releaseEncode() }

// layerPlan returns the plan of layer b's checkpoints, nil if it has
// none or they failed before, and b's encoding.
func (a *Assembler) layerPlan(b Blob) (*codec.Plan, codec.Encoding) {
	var enc codec.Encoding
	if err := json.Unmarshal(b.Layout.Encoding, &enc); err != nil || len(b.Layout.Checkpoints) == 0 {
		return nil, enc
	}
	if _, bad := a.badPlans.Load(b.Digest); bad {
		return nil, enc
	}
	p, err := codec.NewPlan(enc, b.Layout.Checkpoints)
	if err == nil && (p.Size() != b.Size || p.RawSize() != b.Layout.TarSize) {
		err = fmt.Errorf("checkpoints for a %d-byte layer of a %d-byte tar", p.Size(), p.RawSize())
	}
	if err != nil {
		a.planFailed(b, err)
		return nil, enc
	}
	return p, enc
}

// planFailed stops this process using layer b's checkpoints.
func (a *Assembler) planFailed(b Blob, err error) {
	if _, loaded := a.badPlans.LoadOrStore(b.Digest, true); !loaded {
		a.stats.badPlans.Add(1)
		a.log.Error("layer checkpoints do not reproduce the layer; it is encoded from its start from now on", "digest", b.Digest, "err", err)
	}
}

// encodeLayer starts the pipeline that rebuilds the whole layer b; the
// reader verifies the digest at the end. done is called once the
// pipeline has stopped (the caller's encode slot). A layer whose
// checkpoints fail is marked so that the next encode starts from the
// beginning.
func (a *Assembler) encodeLayer(ctx context.Context, b Blob, done func()) (io.ReadCloser, error) {
	r, _, err := a.encodeFrom(ctx, b, 0, verifyDigest, done)
	if err != nil {
		return nil, err
	}
	return &planCheck{verifier: newVerifier(r, b.Digest, b.Size), a: a, b: b}, nil
}

// planCheck marks a layer's checkpoints bad when a whole encode through
// them fails its digest or a segment check.
type planCheck struct {
	*verifier
	a *Assembler
	b Blob
}

func (p *planCheck) Read(buf []byte) (int, error) {
	n, err := p.verifier.Read(buf)
	if (errors.Is(err, ErrDigestMismatch) || errors.Is(err, codec.ErrSegment)) && len(p.b.Layout.Checkpoints) > 0 {
		p.a.planFailed(p.b, err)
	}
	return n, err
}

// encodeFrom starts the pipeline that rebuilds layer b from blob offset
// start on, start being the last segment start at or before off (0 for a
// layer without checkpoints), its stored bytes checked as v says
// (verifyDigest only for a whole layer, whose reader checks the digest).
// done is called once the pipeline has stopped.
func (a *Assembler) encodeFrom(ctx context.Context, b Blob, off int64, v verifyMode, done func()) (io.ReadCloser, int64, error) {
	plan, enc := a.layerPlan(b)
	if plan == nil {
		if err := json.Unmarshal(b.Layout.Encoding, &enc); err != nil {
			done()
			return nil, 0, fmt.Errorf("assembler: layer %s: bad encoding recipe: %w", b.Digest, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	first, start, from := 0, int64(0), int64(0)
	if plan != nil {
		first = plan.StartFor(off)
		start, from = plan.Offset(first), plan.Segments()[first].From
	}
	if from != 0 {
		v = verifyChunks
	}
	tar, err := a.openTar(ctx, b.Digest, b.Chunks, b.Layout.HeaderChunks, from, v)
	if err != nil {
		cancel()
		done()
		return nil, 0, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer done()
		began := time.Now()
		var err error
		if plan != nil {
			err = plan.Encode(ctx, pw, tar, first, a.par, encodeSlots{a})
		} else {
			err = a.encode(pw, enc, tar)
		}
		tar.Close()
		a.stats.encodeNanos.Add(int64(time.Since(began)))
		pw.CloseWithError(err) // nil: EOF
	}()
	return &pipeCloser{pr, cancel}, start, nil
}

// encode compresses tar into w as enc says, from the start; an
// uncompressed layer (no format) is the tar itself. Encoders that run
// blocks on goroutines of their own get the free slots, up to the
// parallelism, for them.
func (a *Assembler) encode(w io.Writer, enc codec.Encoding, tar io.Reader) error {
	if enc.Format == "" {
		_, err := io.Copy(w, tar)
		return err
	}
	workers := 1
	switch enc.Encoder {
	case codec.EncoderPgzip, codec.EncoderPigz, codec.EncoderKlauspostZstd:
		for slots := (encodeSlots{a}); workers < a.par && slots.TryAcquire(); workers++ {
		}
		defer func() {
			for range workers - 1 {
				a.releaseEncode()
			}
		}()
	}
	cw, err := codec.NewWriterOptions(w, enc, codec.WriterOptions{Concurrency: workers})
	if err != nil {
		return err
	}
	if _, err := io.Copy(cw, tar); err != nil {
		cw.Close()
		return err
	}
	return cw.Close()
}

func sumRaw(chunks []refgraph.ChunkRef) int64 {
	var n int64
	for _, c := range chunks {
		n += int64(c.RawLen)
	}
	return n
}

// pipeCloser stops the pipeline when the reader is closed early.
type pipeCloser struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (p *pipeCloser) Close() error {
	p.cancel()
	return p.PipeReader.CloseWithError(errors.New("assembler: reader closed"))
}

// sectionCloser reads length bytes from off of f, closing f at the end.
func sectionCloser(f *os.File, off, length int64) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, length), f}
}
