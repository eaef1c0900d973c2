package registry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/scan"
	"github.com/opencontainers/go-digest"
)

// Vulnerability scanning (package scan) in the service. A manifest push
// records the image (its layers, bottom first) and queues the layers that
// have no inventory; background workers analyze them, each layer once
// whatever the images sharing it: a split layer through its header stream
// and only the byte ranges of the files the analyzers want, read from its
// chunks; an opaque or pending layer as its decompressed tar stream. The
// queue, the inventories, the advisories and the reports live in the
// index's scan space (refgraph.Graph.ScanSpace), so a restart loses
// nothing; the inventories and image records go when garbage collection
// deletes their blob (BlobDeleted).

// ScanOptions configure vulnerability scanning.
type ScanOptions struct {
	// Workers is how many layers are analyzed at once; 0 turns scanning
	// off (no image is queued; reports are not served).
	Workers int
	// MaxFileSize: a file an analyzer wants that is larger is skipped
	// with a note (default scan.DefaultMaxFileSize).
	MaxFileSize int64
	// TempDir holds the spool files of tar layers' files ("": the
	// system's temporary directory).
	TempDir string
	// ConversionWait is how long a layer pending conversion waits for the
	// converter (whose split layer is read far more cheaply) before it is
	// read as pushed (default 10 minutes).
	ConversionWait time.Duration
	// An analysis that fails reading stored bytes is retried after
	// RetryBase (default 10 s), doubling up to RetryMax (default 1 h), at
	// most MaxAttempts times (default 10); then the layer is given up on
	// and the reports of its images say so.
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
}

func (o *ScanOptions) setDefaults() {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = scan.DefaultMaxFileSize
	}
	if o.ConversionWait <= 0 {
		o.ConversionWait = 10 * time.Minute
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

// scanner is the service's scanning state.
type scanner struct {
	db   *scan.DB
	opts ScanOptions
	kick chan struct{} // wakes the workers

	mu      sync.Mutex
	running map[string]bool // layers being analyzed

	importMu sync.Mutex               // one advisory import at a time
	changes  map[scan.PackageKey]bool // changed by imports, not matched again yet (under mu)
	rematch  chan struct{}            // wakes the re-matcher

	analyzed   atomic.Int64 // layers analyzed since start
	rematched  atomic.Int64 // reports matched again after feed updates
	bytesRead  atomic.Int64 // content and header bytes read by analyses
	tarBytes   atomic.Int64 // uncompressed size of the layers analyzed
	storeBytes atomic.Int64 // bytes fetched from storage for them
}

func newScanner(graph *refgraph.Graph, opts ScanOptions) *scanner {
	opts.setDefaults()
	return &scanner{db: scan.NewDB(spaceKV{graph.ScanSpace()}), opts: opts,
		kick: make(chan struct{}, 1), rematch: make(chan struct{}, 1), running: map[string]bool{}}
}

func (sc *scanner) on() bool { return sc.opts.Workers > 0 }

func (sc *scanner) wake() {
	select {
	case sc.kick <- struct{}{}:
	default:
	}
}

func (sc *scanner) isRunning(layer string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.running[layer]
}

// ScanDB is the scan database in the index (inventories, advisories,
// queue, reports).
func (s *Service) ScanDB() *scan.DB { return s.scans.db }

// ScanStats counts the scanning work since the service started.
type ScanStats struct {
	LayersAnalyzed int64 `json:"layers_analyzed"`
	// BytesRead is what the analyses read of the layers (header streams
	// and file contents), TarBytes the layers' uncompressed sizes,
	// StoreBytes the bytes fetched from storage to serve the reads
	// (whole chunks; a tar layer's whole stream).
	BytesRead      int64 `json:"bytes_read"`
	TarBytes       int64 `json:"tar_bytes"`
	StoreBytes     int64 `json:"store_bytes"`
	ReportsMatched int64 `json:"reports_rematched"`
	Queued         int   `json:"queued"`
}

// ScanStats returns the scanning counters.
func (s *Service) ScanStats(ctx context.Context) (ScanStats, error) {
	sc := s.scans
	n, err := sc.db.QueueLength(ctx)
	return ScanStats{LayersAnalyzed: sc.analyzed.Load(), BytesRead: sc.bytesRead.Load(), TarBytes: sc.tarBytes.Load(),
		StoreBytes: sc.storeBytes.Load(), ReportsMatched: sc.rematched.Load(), Queued: n}, err
}

// runScanner analyzes queued layers until ctx is done, the earliest due
// first, with at most Workers at once.
func (s *Service) runScanner(ctx context.Context) {
	defer s.survive("scanner")
	sc := s.scans
	if err := s.scanStartup(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("scan: start-up sweep", "err", err)
	}
	slots := make(chan struct{}, sc.opts.Workers)
	done := make(chan string)
	busy := 0
	for {
		now := time.Now()
		due, next, err := sc.db.Due(ctx, now, 4*sc.opts.Workers)
		if err != nil && ctx.Err() == nil {
			s.log.Error("scan: reading the queue", "err", err)
		}
		for _, e := range due {
			if sc.isRunning(e.Layer) {
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // all workers busy
			}
			sc.mu.Lock()
			sc.running[e.Layer] = true
			sc.mu.Unlock()
			busy++
			go func() {
				defer func() {
					sc.mu.Lock()
					delete(sc.running, e.Layer)
					sc.mu.Unlock()
					<-slots
					done <- e.Layer
				}()
				defer s.survive("scan")
				if err := s.scanLayer(ctx, e); err != nil && ctx.Err() == nil {
					s.scanFailed(ctx, e, err)
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
			for ; busy > 0; busy-- {
				<-done
			}
			return
		case <-done:
			busy--
		case <-sc.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// scanFailed schedules the next attempt at a layer, or gives it up.
func (s *Service) scanFailed(ctx context.Context, e scan.QueueEntry, cause error) {
	sc := s.scans
	attempt := e.Attempts + 1
	if attempt >= sc.opts.MaxAttempts {
		s.log.Error("scan: giving up analyzing layer; its images' reports will say so", "layer", e.Layer, "attempts", attempt, "err", cause)
		if err := sc.db.Abandon(ctx, e.Layer, cause.Error(), attempt, time.Now()); err != nil {
			s.log.Error("scan: recording an abandoned layer", "layer", e.Layer, "err", err)
		}
		s.reportImagesOf(ctx, e.Layer)
		return
	}
	delay := sc.opts.RetryBase
	for i := 1; i < attempt && delay < sc.opts.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, sc.opts.RetryMax)
	s.log.Warn("scan: analyzing layer failed; will retry", "layer", e.Layer, "attempt", attempt, "retry_in", delay, "err", cause)
	if _, err := sc.db.Reschedule(ctx, e.Layer, time.Now().Add(delay), true, cause.Error()); err != nil {
		s.log.Error("scan: rescheduling a layer", "layer", e.Layer, "err", err)
	}
}

// errPostponed: the layer waits for its conversion; not a failure.
var errPostponed = errors.New("postponed")

// scanLayer analyzes one queued layer and stores its inventory, then
// reports the images it completes.
func (s *Service) scanLayer(ctx context.Context, e scan.QueueEntry) error {
	sc := s.scans
	d := digest.Digest(e.Layer)
	if _, ok, err := sc.db.Inventory(ctx, e.Layer); err != nil || ok {
		if err == nil {
			err = sc.db.Dequeue(ctx, e.Layer) // analyzed meanwhile
		}
		return err
	}
	start := time.Now()
	inv, err := s.analyzeLayer(ctx, d, e.Queued)
	if errors.Is(err, errPostponed) {
		_, err := sc.db.Reschedule(ctx, e.Layer, time.Now().Add(5*time.Second), false, "")
		return err
	}
	if errors.Is(err, refgraph.ErrNotFound) {
		// The blob is gone (deleted by GC, or a foreign layer never
		// pushed): nothing will ever read it.
		return sc.db.Abandon(ctx, e.Layer, "the layer is not in the registry", e.Attempts+1, time.Now())
	}
	if err != nil {
		return err
	}
	if err := sc.db.PutInventory(ctx, e.Layer, inv); err != nil {
		return err
	}
	if _, err := s.graph.Blob(d); errors.Is(err, refgraph.ErrNotFound) {
		// Deleted by GC while it was read: drop what was just stored.
		return sc.db.ForgetLayer(ctx, e.Layer)
	}
	st := inv.Stats
	sc.analyzed.Add(1)
	sc.bytesRead.Add(st.HeaderBytes + st.ContentRead)
	sc.tarBytes.Add(st.Uncompressed)
	sc.storeBytes.Add(st.StoreRead)
	s.log.Info("scan: analyzed layer", "layer", d, "packages", len(inv.Packages), "notes", len(inv.Notes),
		"uncompressed", st.Uncompressed, "read", st.HeaderBytes+st.ContentRead, "store_read", st.StoreRead,
		"files_read", st.FilesRead, "incomplete", inv.Incomplete, "duration", time.Since(start).Round(time.Millisecond))
	s.reportImagesOf(ctx, e.Layer)
	return nil
}

// AnalyzeLayer returns the inventory of layer d, from the index if it has
// one, else analyzing the layer now and storing the result (for a scan on
// a stopped data dir; a server's workers do this in the background).
func (s *Service) AnalyzeLayer(ctx context.Context, d digest.Digest) (*scan.Inventory, error) {
	sc := s.scans
	if inv, ok, err := sc.db.Inventory(ctx, string(d)); err != nil || ok {
		return inv, err
	}
	inv, err := s.analyzeLayer(ctx, d, time.Time{})
	if err != nil {
		return nil, err
	}
	return inv, sc.db.PutInventory(ctx, string(d), inv)
}

// analyzeLayer reads layer d as it is stored. queued is when it was
// queued (zero: read a pending layer now rather than wait).
func (s *Service) analyzeLayer(ctx context.Context, d digest.Digest, queued time.Time) (*scan.Inventory, error) {
	sc := s.scans
	opts := scan.Options{MaxFileSize: sc.opts.MaxFileSize}
	y := s.newYielder(ctx)
	for attempt := 0; ; attempt++ {
		b, err := s.graph.Blob(d)
		if err != nil {
			return nil, err
		}
		switch b.Kind {
		case refgraph.KindLayer:
			hc := s.asm.ChunkReaderAt(ctx, d, b.Chunks[:b.Layout.HeaderChunks])
			content := s.asm.ChunkReaderAt(ctx, d, b.Chunks[b.Layout.HeaderChunks:])
			l := &scan.SplitLayer{
				Headers: y.reader(io.NopCloser(io.NewSectionReader(hc, 0, hc.Size()))),
				Content: &yieldReaderAt{r: content, y: y},
			}
			inv, err := scan.Analyze(ctx, l, opts)
			if inv != nil {
				// The header stream's chunks are fetched too.
				inv.Stats.StoreRead += hc.StoreBytesRead()
			}
			return inv, err
		case refgraph.KindPending:
			if !queued.IsZero() && s.convert.Workers > 0 && time.Since(queued) < sc.opts.ConversionWait {
				if q, err := s.graph.ConversionQueued(d); err != nil || q {
					if err == nil {
						err = errPostponed
					}
					return nil, err
				}
			}
			f, ok, err := s.openPending(d)
			if err != nil {
				return nil, err
			}
			if !ok {
				if attempt > 0 {
					return nil, fmt.Errorf("pending layer %s has no file", d)
				}
				continue // converted since we looked
			}
			orig := func() (io.ReadCloser, error) { return storageReader{f}, nil }
			return s.analyzeTar(ctx, b, orig, y, opts)
		default:
			orig := func() (io.ReadCloser, error) {
				r, err := s.asm.Open(ctx, recipe(b), 0, b.Size)
				if err != nil {
					return nil, err
				}
				return storageReader{r}, nil
			}
			return s.analyzeTar(ctx, b, orig, y, opts)
		}
	}
}

// analyzeTar reads a layer as its decompressed tar stream.
func (s *Service) analyzeTar(ctx context.Context, b refgraph.Blob, orig func() (io.ReadCloser, error), y *yielder, opts scan.Options) (*scan.Inventory, error) {
	yorig := func() (io.ReadCloser, error) {
		r, err := orig()
		if err != nil {
			return nil, err
		}
		return y.reader(r), nil
	}
	tr, _, err := s.openTar(b, yorig)
	if errors.Is(err, errNotLayer) {
		return &scan.Inventory{AnalyzerVersion: scan.AnalyzerVersion, Packages: []scan.Package{}, Incomplete: true,
			Notes: []scan.Note{{Message: fmt.Sprintf("layer not read: %v", err)}}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	l := &scan.TarLayer{R: layerFaults{bufio.NewReaderSize(tr, 64<<10)}, TempDir: s.scans.opts.TempDir}
	return scan.Analyze(ctx, l, opts)
}

// storageReader marks the errors of reading a blob's stored bytes, so
// that they are told apart from the layer's own faults (a stream that
// does not decompress) after decompression.
type storageReader struct{ io.ReadCloser }

type storageError struct{ err error }

func (e *storageError) Error() string { return e.err.Error() }
func (e *storageError) Unwrap() error { return e.err }

func (r storageReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &storageError{err}
	}
	return n, err
}

// layerFaults turns the errors of a decompressed stream that are not
// storage errors (a corrupt stream, one inflating past the limits) into
// the layer's own faults: the inventory records where it broke off.
type layerFaults struct{ r io.Reader }

func (l layerFaults) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF && !errors.As(err, new(*storageError)) && !errors.Is(err, context.Canceled) {
		err = &scan.TarFormatError{Err: err}
	}
	return n, err
}

// yieldReaderAt pauses every mebibyte read while pushes are busy.
type yieldReaderAt struct {
	r interface {
		io.ReaderAt
		StoreBytesRead() int64
	}
	y *yielder
	n atomic.Int64
}

func (r *yieldReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if r.n.Add(int64(len(p))) >= 1<<20 {
		r.n.Store(0)
		r.y.pause()
	}
	return r.r.ReadAt(p, off)
}

// StoreBytesRead implements scan.StoreCounter.
func (r *yieldReaderAt) StoreBytesRead() int64 { return r.r.StoreBytesRead() }

// spaceKV is scan's KV over the index's scan space.
type spaceKV struct{ s *refgraph.Space }

func (k spaceKV) Get(key []byte) ([]byte, error) {
	v, err := k.s.Get(key)
	if errors.Is(err, refgraph.ErrNotFound) {
		return nil, scan.ErrNotFound
	}
	return v, err
}

func (k spaceKV) Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error {
	return k.s.Scan(ctx, prefix, fn)
}

func (k spaceKV) Apply(b *scan.Batch) error {
	ws := make([]refgraph.Write, 0, b.Len())
	b.Each(func(key, value []byte, del bool) error {
		ws = append(ws, refgraph.Write{Key: key, Value: value, Delete: del})
		return nil
	})
	return k.s.Apply(ws)
}
