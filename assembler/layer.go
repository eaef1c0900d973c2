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
	"github.com/chunkyard/chunkyard/chunkstore"
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
//   - A cold layer is encoded once, by a fill (fill.go): one goroutine,
//     holding one of Options.MaxEncodes encode slots, writes the encoded
//     layer into a new cache entry as fast as it can, verifying it, while
//     any number of pulls of that layer read the entry as it grows, each
//     at its own pace. A slow client holds no encode slot, concurrent
//     misses of one layer cost one encode, and a range is served as soon
//     as the encode has passed it.
//   - Without a cache, or for a paced assembler (a conversion checking its
//     recipe, which must yield to pushes), the encode streams to the
//     reader at the reader's pace.

// LayerCacheKey names a layer in the layer cache: "sha256-<hex>".
func LayerCacheKey(d digest.Digest) string { return string(d.Algorithm()) + "-" + d.Encoded() }

// openLayer returns length bytes from off of the layer b.
func (a *Assembler) openLayer(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if r, ok := a.openCached(b, off, length); ok {
		a.stats.hits.Add(1)
		return r, nil
	}
	if a.layers == nil || a.paced {
		return a.openDirect(ctx, b, off, length)
	}
	return a.joinFill(b).reader(ctx, off, length), nil
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

// openDirect encodes layer b for this reader alone, at its pace. A whole
// read goes into the cache on the way (committed only once verified); a
// range encodes from the start and skips to it.
func (a *Assembler) openDirect(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	if err := a.acquireEncode(ctx); err != nil {
		return nil, err
	}
	r, err := a.encodeLayer(ctx, b, a.releaseEncode)
	if err != nil {
		return nil, err
	}
	a.stats.misses.Add(1)
	if off == 0 && length == b.Size {
		w, err := a.layers.Create()
		if err != nil {
			return r, nil // no cache
		}
		return &teeToCache{r: r, w: w, key: LayerCacheKey(b.Digest)}, nil
	}
	// Chunks are verified; the digest only by a whole read.
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		r.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(r, length), r}, nil
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

// encodeLayer starts the pipeline that rebuilds layer b; the reader
// verifies the digest at the end. done is called once the pipeline has
// stopped (the caller's encode slot).
func (a *Assembler) encodeLayer(ctx context.Context, b Blob, done func()) (io.ReadCloser, error) {
	var enc codec.Encoding
	if err := json.Unmarshal(b.Layout.Encoding, &enc); err != nil {
		done()
		return nil, fmt.Errorf("assembler: layer %s: bad encoding recipe: %w", b.Digest, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	tar, err := a.OpenTar(ctx, b.Digest, b.Chunks, b.Layout.HeaderChunks)
	if err != nil {
		cancel()
		done()
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer done()
		start := time.Now()
		err := encode(pw, enc, tar)
		tar.Close()
		a.stats.encodeNanos.Add(int64(time.Since(start)))
		pw.CloseWithError(err) // nil: EOF
	}()
	return newVerifier(&pipeCloser{pr, cancel}, b.Digest, b.Size), nil
}

// encode compresses tar into w as enc says; an uncompressed layer (no
// format) is the tar itself.
func encode(w io.Writer, enc codec.Encoding, tar io.Reader) error {
	if enc.Format == "" {
		_, err := io.Copy(w, tar)
		return err
	}
	cw, err := codec.NewWriter(w, enc)
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

// teeToCache copies what is read into a cache entry, committed only when
// the whole layer was read and verified.
type teeToCache struct {
	r   io.ReadCloser
	w   *chunkstore.CacheWriter
	key string
	bad bool
}

func (t *teeToCache) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && !t.bad {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			t.bad = true
		}
	}
	if err == io.EOF && !t.bad { // the verifier said EOF: the bytes are right
		t.w.Commit(t.key)
	}
	return n, err
}

func (t *teeToCache) Close() error {
	t.w.Abort() // a no-op after Commit
	return t.r.Close()
}

// sectionCloser reads length bytes from off of f, closing f at the end.
func sectionCloser(f *os.File, off, length int64) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, length), f}
}
