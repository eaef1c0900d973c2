package bench

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// blobResult is one blob analysed, before its chunks are committed.
type blobResult struct {
	report    BlobReport
	chunkyard []*batch // what chunkyard would store
	ideal     []*batch // what an ideal plain-CDC store would
}

// analyze reads blob b of the layout in dir and works out its chunks in
// both chunked stores, reporting the blob's bytes to m as it first reads
// them. Errors are the context's, I/O errors and a blob that does not
// match its digest; a blob that is not a reproducible layer is a result.
func (e *Estimator) analyze(ctx context.Context, dir string, b layoutBlob, m *meter) (*blobResult, error) {
	path := blobPath(dir, b.Digest)
	res := &blobResult{report: BlobReport{Digest: b.Digest, Size: b.Size, Role: b.Role, MediaType: b.MediaType}}
	prefix, err := readPrefix(path, 512)
	if err != nil {
		return nil, err
	}
	format := codec.Detect(prefix)
	switch {
	case format != codec.FormatNone:
		res.report.Format = string(format)
	case isTar(prefix):
		res.report.Format = formatTar
	default:
		cy, ideal := newBatch(e.chunkyard), newBatch(e.ideal)
		if err := e.opaque(ctx, path, b, m, cy, ideal); err != nil {
			return nil, err
		}
		res.chunkyard, res.ideal = []*batch{cy}, []*batch{ideal}
		return res, nil
	}
	if err := e.layer(ctx, path, b, format, m, res); err != nil {
		return nil, err
	}
	return res, nil
}

const formatTar = "tar"

// isTar looks for a ustar or GNU tar magic in the first header block.
func isTar(prefix []byte) bool {
	return len(prefix) >= 263 && string(prefix[257:262]) == "ustar"
}

func readPrefix(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// layer analyses a blob that looks like a layer: while it splits the tar
// and chunks its three streams, codec.Find looks for the encoder that
// reproduces the blob. A blob that does not split is opaque in both
// stores; one that splits but that no encoder reproduces is opaque in
// chunkyard only.
func (e *Estimator) layer(ctx context.Context, path string, b layoutBlob, format codec.Format, m *meter, res *blobResult) error {
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := make(chan findResult, 1)
	if format != codec.FormatNone {
		go func() { found <- e.find(bctx, path, b.Size, format) }()
	}
	hdr, content, ideal := newBatch(e.chunkyard), newBatch(e.chunkyard), newBatch(e.ideal)
	st, splitErr := e.split(bctx, path, b, format, m, hdr, content, ideal)
	if splitErr != nil {
		cancel() // the encoding of a blob that is not a layer does not matter
	}
	var fr findResult
	if format != codec.FormatNone {
		fr = <-found
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var bad *digestError
	if errors.As(splitErr, &bad) {
		return bad
	}
	r := &res.report
	if splitErr != nil {
		r.Why = "not a splittable tar: " + splitErr.Error()
		cy, ideal := newBatch(e.chunkyard), newBatch(e.ideal)
		if err := e.opaque(ctx, path, b, m, cy, ideal); err != nil {
			return err
		}
		res.chunkyard, res.ideal = []*batch{cy}, []*batch{ideal}
		return nil
	}
	r.Layer = true
	r.TarBytes, r.HeaderBytes, r.ContentBytes = st.TarBytes, st.HeaderBytes, st.ContentBytes
	res.ideal = []*batch{ideal}
	switch {
	case format == codec.FormatNone:
		r.Reproduced, r.Encoding = true, "tar (uncompressed)"
	case fr.err != nil:
		r.Why = fr.err.Error()
	case !fr.ok:
		r.Why = cmp.Or(fr.note, "no known encoder reproduces it")
	default:
		r.Reproduced, r.Encoding = true, fr.enc.String()
	}
	if r.Reproduced {
		res.chunkyard = []*batch{hdr, content}
		return nil
	}
	cy := newBatch(e.chunkyard)
	if err := e.opaque(ctx, path, b, m, cy); err != nil {
		return err
	}
	res.chunkyard = []*batch{cy}
	return nil
}

type findResult struct {
	enc  codec.Encoding
	ok   bool
	note string
	err  error
}

// find looks for the encoding that makes the blob again from its tar, as
// the registry's converter does.
func (e *Estimator) find(ctx context.Context, path string, size int64, format codec.Format) findResult {
	orig := func() (io.ReadCloser, error) { return os.Open(path) }
	raw := func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		r, closeTar, err := e.openTar(bufio.NewReaderSize(f, 64<<10), format, size)
		if err != nil {
			f.Close()
			return nil, err
		}
		return readCloser{r, func() error { closeTar(); return f.Close() }}, nil
	}
	enc, ok, st, err := codec.FindWithStats(ctx, raw, orig)
	return findResult{enc: enc, ok: ok, note: st.Note, err: err}
}

// split decompresses the blob and tar-splits it, cutting the tar into
// ideal's chunks and the header and content streams into hdr's and
// content's, all at once.
func (e *Estimator) split(ctx context.Context, path string, b layoutBlob, format codec.Format, m *meter, hdr, content, ideal *batch) (tarsplit.Stats, error) {
	src, err := openBlob(path, b, m)
	if err != nil {
		return tarsplit.Stats{}, err
	}
	defer src.Close()
	br := bufio.NewReaderSize(src, 64<<10)
	tarStream, closeTar, err := e.openTar(br, format, b.Size)
	if err != nil {
		return tarsplit.Stats{}, err
	}
	defer closeTar()

	type stream struct {
		r *io.PipeReader
		w *io.PipeWriter
		b *batch
	}
	streams := []*stream{{b: ideal}, {b: hdr}, {b: content}}
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		s.r, s.w = io.Pipe()
		wg.Go(func() {
			errs[i] = e.cut(ctx, s.r, s.b)
			s.r.CloseWithError(errs[i]) // a failed cut fails the writer
		})
	}
	st, err := tarsplit.Split(io.TeeReader(tarStream, streams[0].w), streams[1].w, streams[2].w)
	if err == nil {
		// Read what the decompressor left, if anything, so that the
		// digest is checked.
		_, err = io.Copy(io.Discard, br)
	}
	for _, s := range streams {
		s.w.CloseWithError(err)
	}
	wg.Wait()
	switch {
	case src.bad != nil:
		return st, src.bad
	case err != nil:
		return st, err
	}
	return st, errors.Join(errs...)
}

// opaque cuts the blob's own bytes into the batches' chunks.
func (e *Estimator) opaque(ctx context.Context, path string, b layoutBlob, m *meter, batches ...*batch) error {
	src, err := openBlob(path, b, m)
	if err != nil {
		return err
	}
	defer src.Close()
	err = e.cut(ctx, src, batches...)
	if src.bad != nil {
		return src.bad
	}
	return err
}

// openTar returns the decompressed stream of r, a blob of size bytes in
// format, bounded like the converter's, and a function releasing the
// decoder.
func (e *Estimator) openTar(r io.Reader, format codec.Format, size int64) (io.Reader, func(), error) {
	limit := e.opts.MaxInflated
	ratioLimit := min(limit, int64(e.opts.MaxRatio*float64(size)))
	switch format {
	case codec.FormatGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return codec.LimitInflated(zr, ratioLimit), func() {}, nil
	case codec.FormatZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return codec.LimitInflated(zr, ratioLimit), zr.Close, nil
	}
	return codec.LimitInflated(r, limit), func() {}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// inflateLimit fails a decompressed stream that grows past a bound.

// blobReader reads a layout blob, reporting new bytes to a meter and
// checking size and digest at the end: a mismatch is kept in bad.
type blobReader struct {
	f    *os.File
	b    layoutBlob
	h    hash.Hash
	n    int64
	m    *meter
	bad  *digestError
	done bool
}

func openBlob(path string, b layoutBlob, m *meter) (*blobReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &blobReader{f: f, b: b, h: b.Digest.Algorithm().Hash(), m: m}, nil
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.bad != nil {
		return 0, r.bad
	}
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	r.m.add(int64(n))
	if r.n > r.b.Size || errors.Is(err, io.EOF) && !r.done {
		r.done = true
		got := digest.NewDigestFromBytes(r.b.Digest.Algorithm(), r.h.Sum(nil))
		if r.n != r.b.Size || got != r.b.Digest {
			r.bad = &digestError{want: r.b.Digest, got: got, size: r.b.Size, n: r.n}
			return 0, r.bad
		}
	}
	return n, err
}

func (r *blobReader) Close() error { return r.f.Close() }

// digestError: a layout blob's bytes do not match its descriptor.
type digestError struct {
	want, got digest.Digest
	size, n   int64
}

func (e *digestError) Error() string {
	if e.n != e.size {
		return fmt.Sprintf("blob %s has %d bytes, its descriptor says %d", e.want, e.n, e.size)
	}
	return fmt.Sprintf("blob %s does not match its digest (it hashes to %s)", e.want, e.got)
}

// meter reports a blob's bytes to a progress function, each at most once:
// a blob read twice still counts its size.
type meter struct {
	fn   func(int64)
	left int64
}

func (m *meter) add(n int64) {
	n = min(n, m.left)
	if n > 0 {
		m.left -= n
		m.fn(n)
	}
}

// finish reports what was not read (a blob that failed).
func (m *meter) finish() { m.add(m.left) }
