package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/restic/chunker"
)

// Estimator adds up what OCI image layouts would cost in a plain
// registry, in chunkyard and in an ideal plain-CDC store. Blobs and chunks
// count once across every layout added. It is safe for concurrent use.
type Estimator struct {
	opts      Options
	enc       *zstd.Encoder // EncodeAll is safe for concurrent use
	cutters   sync.Pool     // *cutter
	chunkyard *chunkSet
	ideal     *chunkSet

	mu      sync.Mutex
	seen    map[digest.Digest]bool // blobs and manifests counted or being counted
	layouts []LayoutReport
	total   counts
}

// NewEstimator returns an Estimator with nothing added. Call Close when
// done with it.
func NewEstimator(opts Options) (*Estimator, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// The chunk store's encoder settings: the same frames, the same sizes.
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstdLevel(opts.Compression)),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return nil, fmt.Errorf("bench: zstd encoder: %w", err)
	}
	e := &Estimator{
		opts:      opts,
		enc:       enc,
		chunkyard: newChunkSet(),
		ideal:     newChunkSet(),
		seen:      map[digest.Digest]bool{},
	}
	e.cutters.New = func() any {
		return &cutter{
			chunker: chunker.NewWithBoundaries(nil, opts.Polynomial, uint(opts.MinChunk), uint(opts.MaxChunk)),
			buf:     make([]byte, 0, opts.MaxChunk),
		}
	}
	return e, nil
}

// Close releases the compressor.
func (e *Estimator) Close() error { return e.enc.Close() }

// PendingBytes is how many bytes AddLayout would read for the layouts in
// dirs, in that order: their blobs and manifests that nothing added so far
// counted, each once. It is the total for a progress bar.
func (e *Estimator) PendingBytes(dirs ...string) (int64, error) {
	e.mu.Lock()
	seen := make(map[digest.Digest]bool, len(e.seen))
	for d := range e.seen {
		seen[d] = true
	}
	e.mu.Unlock()
	var n int64
	for _, dir := range dirs {
		l, err := readLayout(dir)
		if err != nil {
			return 0, err
		}
		for _, b := range slices.Concat(l.manifests, l.blobs) {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				n += b.Size
			}
		}
	}
	return n, nil
}

// AddLayout reads the OCI image layout in dir and adds what it holds that
// nothing added before holds. progress, if not nil, is called with the
// number of bytes of each blob as it is read, from several goroutines at
// once. On error (the context's, I/O, a blob that does not match its
// digest) the layout gets no LayoutReport, though the blobs it finished
// stay counted in the total.
func (e *Estimator) AddLayout(ctx context.Context, dir string, progress func(n int64)) error {
	if progress == nil {
		progress = func(int64) {}
	}
	l, err := readLayout(dir)
	if err != nil {
		return err
	}
	rep := &LayoutReport{Path: dir, Missing: l.missing}
	var acc counts

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan layoutBlob)
	var wg sync.WaitGroup
	for range e.opts.Workers {
		wg.Go(func() {
			for b := range jobs {
				m := &meter{fn: progress, left: b.Size}
				res, err := e.analyze(ctx, dir, b, m)
				m.finish()
				if err != nil {
					e.unclaim(b.Digest)
					cancel(fmt.Errorf("bench: layout %s: blob %s: %w", dir, b.Digest, err))
					continue
				}
				e.commit(res, b, &acc, rep)
			}
		})
	}
feed:
	for _, b := range slices.Concat(l.manifests, l.blobs) {
		if !e.claim(b.Digest) {
			e.mu.Lock()
			rep.Seen++
			e.mu.Unlock()
			continue
		}
		select {
		case jobs <- b:
		case <-ctx.Done():
			e.unclaim(b.Digest)
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	slices.SortFunc(rep.Details, func(a, b BlobReport) int { return a.index - b.index })
	rep.Summary = acc.summary()
	e.mu.Lock()
	e.layouts = append(e.layouts, *rep)
	e.mu.Unlock()
	return nil
}

// claim marks digest d as counted; false if it already was.
func (e *Estimator) claim(d digest.Digest) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen[d] {
		return false
	}
	e.seen[d] = true
	return true
}

func (e *Estimator) unclaim(d digest.Digest) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.seen, d)
}

// commit adds an analysed blob's new chunks to the stores and counts it in
// the layout's and the total's counts.
func (e *Estimator) commit(res *blobResult, b layoutBlob, acc *counts, rep *LayoutReport) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cy, ideal := commitAll(res.chunkyard), commitAll(res.ideal)
	acc.addBlob(&res.report, cy, ideal)
	e.total.addBlob(&res.report, cy, ideal)
	if e.opts.Details {
		r := res.report
		r.Chunkyard, r.IdealCDC = cy.usage(), ideal.usage()
		r.index = b.index
		rep.Details = append(rep.Details, r)
	}
}

// Report returns what was added so far.
func (e *Estimator) Report() Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Report{
		Chunker: ChunkerParams{
			Polynomial:  e.opts.Polynomial.String(),
			MinChunk:    e.opts.MinChunk,
			AverageBits: e.opts.AverageBits,
			MaxChunk:    e.opts.MaxChunk,
			Compression: string(e.opts.Compression),
		},
		Layouts: append([]LayoutReport{}, e.layouts...),
		Total:   e.total.summary(),
	}
}
