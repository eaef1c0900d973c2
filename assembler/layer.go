package assembler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// A layer stored split is rebuilt by a pipeline: the header stream's and
// the content stream's chunks, zipped back into the tar (tarsplit), then
// compressed as its recipe says (codec), verified against the digest on
// the way out. Encoding is slow (stdlib gzip level 6 runs at ~36 MB/s a
// core), so at most Options.MaxEncodes run at once and finished layers go
// to a bounded cache of encoded layers: a hot layer is served from disk.

// LayerCacheKey names a layer in the layer cache: "sha256-<hex>".
func LayerCacheKey(d digest.Digest) string { return string(d.Algorithm()) + "-" + d.Encoded() }

// openLayer returns length bytes from off of the layer b.
func (a *Assembler) openLayer(ctx context.Context, b Blob, off, length int64) (io.ReadCloser, error) {
	key := LayerCacheKey(b.Digest)
	if f, size, ok := a.layers.Open(key); ok {
		if size == b.Size {
			return sectionCloser(f, off, length), nil
		}
		f.Close()
		a.layers.Drop(key)
	}
	whole := off == 0 && length == b.Size
	if !whole && a.layers != nil {
		// Fill the cache with the whole verified layer, then serve the
		// range from it.
		if err := a.fillCache(ctx, b); err != nil {
			return nil, err
		}
		if f, size, ok := a.layers.Open(key); ok && size == b.Size {
			return sectionCloser(f, off, length), nil
		}
	}
	r, err := a.encodeLayer(ctx, b)
	if err != nil {
		return nil, err
	}
	if whole {
		w, err := a.layers.Create()
		if err != nil {
			return r, nil // no cache
		}
		return &teeToCache{r: r, w: w, key: key}, nil
	}
	// No cache: encode from the start, skip to the range. Chunks are
	// verified; the digest only by a whole read.
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		r.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(r, length), r}, nil
}

// fillCache encodes the whole layer into the cache, verified.
func (a *Assembler) fillCache(ctx context.Context, b Blob) error {
	r, err := a.encodeLayer(ctx, b)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := a.layers.Create()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(LayerCacheKey(b.Digest))
}

// encodeLayer starts the pipeline that rebuilds layer b; the reader
// verifies the digest at the end.
func (a *Assembler) encodeLayer(ctx context.Context, b Blob) (io.ReadCloser, error) {
	var enc codec.Encoding
	if err := json.Unmarshal(b.Layout.Encoding, &enc); err != nil {
		return nil, fmt.Errorf("assembler: layer %s: bad encoding recipe: %w", b.Digest, err)
	}
	select { // bound the encodes running at once
	case a.encodes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)
	tar, err := a.OpenTar(ctx, b.Digest, b.Chunks, b.Layout.HeaderChunks)
	if err != nil {
		<-a.encodes
		cancel()
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer func() { <-a.encodes }()
		err := encode(pw, enc, tar)
		tar.Close()
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
