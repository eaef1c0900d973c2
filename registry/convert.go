package registry

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// ConvertOptions configure the background converter.
type ConvertOptions struct {
	// Workers is how many blobs are converted at once; 0 turns conversion
	// off (every blob is then chunked opaque while it is pushed).
	Workers int
	// PendingDir holds pushed blobs waiting for conversion (required with
	// Workers > 0; same filesystem as the upload dir).
	PendingDir string
	// MaxInflated is the largest uncompressed layer converted (default 16
	// GiB); MaxRatio the largest uncompressed/compressed ratio (default
	// 100). A layer past either stays opaque: decompression bombs cost
	// bounded time and no memory.
	MaxInflated int64
	MaxRatio    float64
	// MaxYield is how long one conversion may pause, in all, while pushes
	// are in flight (default 2 minutes; negative: never pause).
	MaxYield time.Duration
	// A conversion that fails (its file unreadable, the disk full, the
	// index failing) is retried after RetryBase (default 10 s), doubling
	// up to RetryMax (default 1 h), at most MaxAttempts times in all
	// (default 10, about 2.5 hours); then it is abandoned and the blob
	// stays as received, served from its pending file.
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
	// CheckpointSpacing is the tar bytes between two checkpoints of a
	// layer (0: by its size, see checkpointSpacing).
	CheckpointSpacing int64
}

func (o *ConvertOptions) setDefaults() {
	if o.MaxInflated <= 0 {
		o.MaxInflated = 16 << 30
	}
	if o.MaxRatio <= 0 {
		o.MaxRatio = 100
	}
	if o.MaxYield == 0 {
		o.MaxYield = 2 * time.Minute
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 10 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
}

// retryDelay is the backoff before attempt n+1 after n failed attempts.
func (o *ConvertOptions) retryDelay(n int) time.Duration {
	d := o.RetryBase
	for i := 1; i < n && d < o.RetryMax; i++ {
		d *= 2
	}
	return min(d, o.RetryMax)
}

// maxZstdWindow bounds the memory a zstd layer's decoder may take: its
// window (containerd and klauspost write 8 MiB windows; zstd -19 8 MiB,
// --ultra -22 128 MiB). A frame asking for more stays opaque rather than
// make a push cost that much memory.
const maxZstdWindow = 64 << 20

// errNotLayer is why a blob stays opaque; it is not a failure.
var errNotLayer = errors.New("not a reproducible layer")

func (s *Service) kickConverter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// runConverter converts queued blobs until ctx is done, the earliest due
// first; a failed conversion is retried with backoff (conversionFailed).
func (s *Service) runConverter(ctx context.Context) {
	defer s.survive("converter")
	if err := s.sweepPending(); err != nil {
		s.log.Error("sweeping pending blobs", "err", err)
	}
	slots := make(chan struct{}, s.convert.Workers)
	busy := map[digest.Digest]bool{}
	done := make(chan digest.Digest)
	for {
		if s.graph.Err() != nil { // the index failed: nothing can be converted
			s.log.Error("converter stopped: the index failed", "err", s.graph.Err())
			for len(busy) > 0 {
				delete(busy, <-done)
			}
			return
		}
		now := s.graph.Now() // the clock that stamped the queue's due times
		due, next, err := s.graph.DueConversions(now, 4*s.convert.Workers)
		if err != nil {
			s.log.Error("reading the conversion queue", "err", err)
		}
		for _, e := range due {
			if busy[e.Digest] {
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // all workers busy; the rest waits
			}
			busy[e.Digest] = true
			go func() {
				defer func() { <-slots; done <- e.Digest }()
				defer s.survive("conversion")
				if err := s.convertOne(ctx, e.Digest); err != nil && ctx.Err() == nil {
					s.conversionFailed(e, err)
				}
			}()
		}
		wait := 5 * time.Second
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(now), 10*time.Millisecond))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			for len(busy) > 0 { // let running conversions stop
				delete(busy, <-done)
			}
			return
		case d := <-done:
			delete(busy, d)
		case <-s.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// conversionFailed schedules the next attempt at converting e's blob, or
// abandons it after the last attempt: the blob then stays as received.
func (s *Service) conversionFailed(e refgraph.QueueEntry, cause error) {
	attempt := e.Attempts + 1
	if attempt >= s.convert.MaxAttempts {
		what := "it stays as received, served from its pending file"
		if _, err := s.fs.Stat(s.pendingPath(e.Digest)); errors.Is(err, fs.ErrNotExist) {
			what = "its pending file is missing: the blob cannot be served"
		}
		s.log.Error("giving up converting blob; "+what, "digest", e.Digest, "attempts", attempt, "err", cause)
		if err := s.graph.AbandonConversion(e.Digest, cause.Error()); err != nil {
			s.log.Error("recording an abandoned conversion", "digest", e.Digest, "err", err)
		}
		return
	}
	delay := s.convert.retryDelay(attempt)
	s.log.Warn("converting blob failed; will retry", "digest", e.Digest, "attempt", attempt,
		"max_attempts", s.convert.MaxAttempts, "retry_in", delay, "err", cause)
	if _, err := s.graph.ConversionFailed(e.Digest, cause.Error(), s.graph.Now().Add(delay)); err != nil {
		s.log.Error("recording a failed conversion", "digest", e.Digest, "err", err)
	}
}

// convertOne chunks a queued blob: split if it is a layer whose encoding
// can be reproduced, opaque otherwise.
func (s *Service) convertOne(ctx context.Context, d digest.Digest) error {
	start := time.Now()
	b, err := s.graph.Blob(d)
	if errors.Is(err, refgraph.ErrNotFound) || err == nil && b.Kind == refgraph.KindLayer {
		return s.graph.GiveUpConversion(d, nil)
	}
	if err != nil {
		return err
	}
	y := s.newYielder(ctx)
	orig := func() (io.ReadCloser, error) {
		rc, err := s.openOriginal(ctx, b)
		if err != nil {
			return nil, err
		}
		return y.reader(rc), nil
	}
	chunks, layout, written, err := s.splitLayer(ctx, b, orig, y)
	if err == nil {
		if err := s.graph.ConvertBlob(d, chunks, layout); err != nil {
			return s.staleConversion(d, err)
		}
		s.converted.layers.Add(1)
		s.converted.tarBytes.Add(layout.TarSize)
		s.log.Info("converted layer", "digest", d, "bytes", b.Size, "tar_bytes", layout.TarSize,
			"chunks", len(chunks), "encoding", string(layout.Encoding), "checkpoint_bytes", len(layout.Checkpoints),
			"duration", time.Since(start).Round(time.Millisecond),
			"yielded_to_pushes", time.Duration(y.paused.Load()).Round(time.Millisecond))
		return s.dropPending(b)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !errors.Is(err, errNotLayer) {
		s.log.Warn("layer conversion failed; storing the blob opaque", "digest", d, "err", err)
	} else {
		s.log.Info("storing blob opaque", "digest", d, "why", err)
	}
	if b.Kind != refgraph.KindPending {
		return s.graph.GiveUpConversion(d, written)
	}
	r, err := orig()
	if err != nil {
		return err
	}
	defer r.Close()
	opaque, n, err := s.store.Write(ctx, r, s.knownChunk)
	if err == nil && n != b.Size {
		err = fmt.Errorf("read %d bytes of %d", n, b.Size)
	}
	if err != nil {
		return fmt.Errorf("storing %s opaque: %w", d, err)
	}
	if err := s.graph.ConvertBlob(d, opaque, nil); err != nil {
		return s.staleConversion(d, err)
	}
	if err := s.graph.RecordWritten(written); err != nil {
		return err
	}
	return s.dropPending(b)
}

// staleConversion explains a failed ConvertBlob: a blob garbage
// collection deleted meanwhile is no error (what the attempt wrote counts
// as dead pack bytes, which repacking reclaims).
func (s *Service) staleConversion(d digest.Digest, err error) error {
	if errors.Is(err, refgraph.ErrNotFound) {
		s.log.Info("blob deleted while it was being converted", "digest", d)
		return nil
	}
	return err
}

func (s *Service) dropPending(b refgraph.Blob) error {
	if b.Kind != refgraph.KindPending {
		return nil
	}
	if err := s.fs.Remove(s.pendingPath(b.Digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing pending file: %w", err)
	}
	return nil
}

// openOriginal reads blob b as pushed, verified against its digest.
func (s *Service) openOriginal(ctx context.Context, b refgraph.Blob) (io.ReadCloser, error) {
	if b.Kind == refgraph.KindPending {
		f, ok, err := s.openPending(b.Digest)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("pending blob %s has no file: %w", b.Digest, fs.ErrNotExist)
		}
		return assembler.Verify(sectionFile{io.NewSectionReader(f, 0, b.Size), f}, b.Digest, b.Size), nil
	}
	return s.asm.Open(ctx, recipe(b), 0, b.Size)
}

// openTar returns blob b decompressed (its tar, if it is a layer), bounded
// by the inflate limits, and the compression format.
func (s *Service) openTar(b refgraph.Blob, orig func() (io.ReadCloser, error)) (io.ReadCloser, codec.Format, error) {
	rc, err := orig()
	if err != nil {
		return nil, "", err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	prefix, _ := br.Peek(512)
	format := codec.Detect(prefix)
	limit := s.convert.MaxInflated
	var tarStream io.Reader
	var closeDec func()
	switch format {
	case codec.FormatGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			rc.Close()
			return nil, "", fmt.Errorf("%w: gzip: %v", errNotLayer, err)
		}
		tarStream = zr
		limit = min(limit, int64(s.convert.MaxRatio*float64(b.Size)))
	case codec.FormatZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			rc.Close()
			return nil, "", fmt.Errorf("%w: zstd: %v", errNotLayer, err)
		}
		tarStream, closeDec = zr, zr.Close
		limit = min(limit, int64(s.convert.MaxRatio*float64(b.Size)))
	default:
		if !isTar(prefix) {
			rc.Close()
			return nil, "", fmt.Errorf("%w: neither gzip, zstd nor tar", errNotLayer)
		}
		tarStream = br
	}
	return readCloser{codec.LimitInflated(tarStream, limit), func() error {
		if closeDec != nil {
			closeDec()
		}
		return rc.Close()
	}}, format, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// Checkpoint spacing: a layer records a checkpoint every 1/64 of its
// compressed size in tar bytes (64 to about 200 segments, the tar being 2
// to 3 times the blob), at least 512 KiB and at most 16 MiB apart. Many
// segments balance a cold pull's cores: the last segments finish one by
// one while the other cores idle, about half a segment's encode time per
// core, so a 64 MiB tar cut in 4 MiB segments pulled 3-6% slower on two
// cores than cut in 0.5-1 MiB ones (bench/cold-pull.md). A segment's
// start costs re-hashing its 32 KiB of history (84 segments instead of
// 16 cost 1% more CPU per pull) and its checkpoint about 30 bytes of the
// recipe.
const (
	minCheckpointSpacing = 512 << 10
	maxCheckpointSpacing = 16 << 20
)

func checkpointSpacing(blobSize int64) int64 {
	return min(max(blobSize/64, minCheckpointSpacing), maxCheckpointSpacing)
}

// splitLayer finds the encoding that makes blob b again from its
// decompressed stream, then splits its tar into a header stream and a
// content stream, stores both as chunks, and checks the whole recipe.
// Nothing is stored for a blob no encoder reproduces. written lists
// every chunk it stored, for accounting if it fails.
//
// The layer is encoded once: by the trial that finds the encoding, which
// compares its output with the blob byte for byte and records the
// checkpoints. The recipe is then as good as that trial, given the same
// tar, so the check is that the stored chunks give the same tar: the
// split's tar digest must equal the trial's, and joining the chunks read
// back from the store must give it again. A pull still verifies the
// layer's digest as it encodes it, and checkpoints that fail there are
// dropped for encoding from the start. Since the blob itself is the
// encoded layer, it goes into the layer cache as it is: the first pull is
// hot.
func (s *Service) splitLayer(ctx context.Context, b refgraph.Blob, orig func() (io.ReadCloser, error), y *yielder) (chunks []chunkstore.Chunk, layout *refgraph.Layout, written []chunkstore.Chunk, err error) {
	tarStream, format, err := s.openTar(b, orig)
	if err != nil {
		return nil, nil, nil, err
	}
	defer tarStream.Close()
	var found codec.Result
	if format != codec.FormatNone {
		rawAgain := func() (io.ReadCloser, error) {
			r, _, err := s.openTar(b, orig)
			return r, err
		}
		var ok bool
		var st codec.Stats
		spacing := s.convert.CheckpointSpacing
		if spacing <= 0 {
			spacing = checkpointSpacing(b.Size)
		}
		found, ok, st, err = codec.FindWithOptions(ctx, rawAgain, orig, codec.FindOptions{CheckpointSpacing: spacing})
		s.converted.encoded.Add(st.RawBytes)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %v", errNotLayer, err)
		}
		if !ok {
			return nil, nil, nil, fmt.Errorf("%w: no known encoder reproduces this %s stream", errNotLayer, format)
		}
	}

	// Split: the content stream is chunked as it comes; the header stream,
	// small, waits in a temporary file.
	hf, hpath, err := fsutil.CreateTemp(s.fs, s.convert.PendingDir, ".headers-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() { hf.Close(); s.fs.Remove(hpath) }()
	pr, pw := io.Pipe()
	type writeResult struct {
		chunks []chunkstore.Chunk
		err    error
	}
	res := make(chan writeResult, 1)
	go func() {
		c, _, err := s.store.Write(ctx, pr, s.knownChunk)
		pr.CloseWithError(err)
		res <- writeResult{c, err}
	}()
	hn := &countWriter{w: hf}
	hw := bufio.NewWriter(hn)
	st, splitErr := tarsplit.Split(tarStream, hw, pw)
	pw.CloseWithError(splitErr)
	content := <-res
	written = append(written, content.chunks...)
	if splitErr != nil {
		return nil, nil, written, fmt.Errorf("%w: %v", errNotLayer, splitErr)
	}
	if content.err != nil {
		return nil, nil, written, content.err
	}
	if format != codec.FormatNone && (st.TarDigest != found.RawDigest || st.TarBytes != found.RawSize) {
		return nil, nil, written, fmt.Errorf("the tar split (%d bytes, %s) is not the one the encoder reproduced (%d bytes, %s)",
			st.TarBytes, st.TarDigest, found.RawSize, found.RawDigest)
	}
	if err := hw.Flush(); err != nil {
		return nil, nil, written, err
	}
	headers, _, err := s.store.Write(ctx, io.NewSectionReader(hf, 0, hn.n), s.knownChunk)
	written = append(written, headers...)
	if err != nil {
		return nil, nil, written, err
	}
	chunks = append(append([]chunkstore.Chunk{}, headers...), content.chunks...)
	var encJSON []byte
	if format != codec.FormatNone {
		if encJSON, err = json.Marshal(found.Encoding); err != nil {
			return nil, nil, written, err
		}
	} else if encJSON, err = json.Marshal(codec.Encoding{}); err != nil {
		return nil, nil, written, err
	}
	layout = &refgraph.Layout{HeaderChunks: len(headers), TarSize: st.TarBytes, Encoding: encJSON, Checkpoints: found.Checkpoints}

	// The check: the chunks, read back from the store (an assembler that
	// also sees the chunks just written), join to the tar the encoder
	// reproduced the blob from.
	ov := overlay{graph: s.graph, written: map[chunkstore.ID]chunkstore.Location{}}
	refs := make([]refgraph.ChunkRef, len(chunks))
	for i, c := range chunks {
		refs[i] = refgraph.ChunkRef{ID: c.ID, RawLen: c.RawLen}
		if c.Loc != nil {
			ov.written[c.ID] = *c.Loc
		}
	}
	asm := assembler.New(ov, s.store, assembler.Options{Logger: s.log})
	defer asm.Close()
	joined, err := asm.OpenTar(ctx, b.Digest, refs, len(headers))
	if err != nil {
		return nil, nil, written, err
	}
	sum := sha256.New()
	n, err := io.Copy(sum, y.reader(joined))
	joined.Close()
	if err != nil {
		return nil, nil, written, fmt.Errorf("joining the stored tar: %w", err)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, sum.Sum(nil)); n != st.TarBytes || got != st.TarDigest {
		return nil, nil, written, fmt.Errorf("%w: the stored chunks join to %d bytes %s, the tar was %d bytes %s",
			errNotLayer, n, got, st.TarBytes, st.TarDigest)
	}
	if format != codec.FormatNone {
		s.warmLayerCache(ctx, b, orig)
	}
	return chunks, layout, written, nil
}

// warmLayerCache copies blob b, as received and verified against its
// digest on the way, into the layer cache: it is the encoded layer.
// Failing to cache is no failure of the conversion.
func (s *Service) warmLayerCache(ctx context.Context, b refgraph.Blob, orig func() (io.ReadCloser, error)) {
	if s.layers == nil {
		return
	}
	key := assembler.LayerCacheKey(b.Digest)
	s.layers.Drop(key) // whatever is there, this is the layer
	w, err := s.layers.Create()
	if err != nil {
		return
	}
	defer w.Abort() // a no-op after Commit
	r, err := orig()
	if err != nil {
		return
	}
	defer r.Close()
	if n, err := io.Copy(w, r); err != nil || n != b.Size || ctx.Err() != nil {
		return
	}
	if err := w.Commit(key); err != nil {
		s.log.Warn("caching a converted layer", "digest", b.Digest, "err", err)
	}
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
