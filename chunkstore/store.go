package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

// Defaults for Options.
const (
	DefaultPackSize = 64 << 20
	// 256 KiB average chunks: on the corpus of bench/corpus.md a rebuild
	// stores 2.7x less than at 1 MiB, for 3x the chunk records (the
	// curve is in that file).
	DefaultMinChunk    = 128 << 10
	DefaultMaxChunk    = 2 << 20
	DefaultAverageBits = 18

	stagingDirName = "staging"
	packsDirName   = "packs"
	lockFileName   = "lock"
)

// Options configure Open.
type Options struct {
	// Dir is the local store directory: config.json, staging/ (open packs)
	// and, with the default backend, packs/. Created if missing.
	Dir string
	// FS is the file system of Dir (and of the default backend's packs);
	// nil means vfs.Default, the operating system's. Tests pass a
	// crashable in-memory FS or one that injects errors.
	FS vfs.FS
	// Backend receives sealed packs; nil means a LocalBackend on FS at
	// Dir/packs.
	Backend Backend
	// PackSize is the size at which a pack is sealed (default 64 MiB). Packs
	// end up a little larger: the chunk that crosses it, plus the trailer.
	PackSize int64
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Chunk sizes, used only when creating a new store (they are recorded
	// in config.json with the random chunker polynomial; later Opens use the
	// recorded values). Defaults: 128 KiB min, 2^18 = 256 KiB average, 2 MiB max.
	MinChunk, MaxChunk int
	AverageBits        int
	// IngestConcurrency is the most Write calls chunking at once (default
	// GOMAXPROCS); more wait. Together with MaxChunk it bounds ingest
	// memory: each running Write has at most W+2 chunks in flight (W =
	// min(GOMAXPROCS, 4) hash/compress workers), each in a raw and a
	// compressed buffer of MaxChunk bytes taken from a sync.Pool, so about
	// IngestConcurrency * (W+2) * 2 * MaxChunk at worst.
	IngestConcurrency int
	// Compression is the zstd level of chunks: CompressFastest,
	// CompressDefault (the default) or CompressBetter. It changes only how
	// new chunks are written; any store reads them all.
	Compression Compression
	// ReadCacheDir and ReadCacheSize enable a local cache of pack records
	// read from the backend (worth it for a remote backend such as S3; the
	// local backend needs none). Zero size: no cache.
	ReadCacheDir  string
	ReadCacheSize int64
}

// Store writes chunks into packs and reads them back. It is safe for
// concurrent use.
type Store struct {
	log        *slog.Logger
	fs         vfs.FS
	backend    Backend
	stagingDir string
	packSize   int64
	cfg        config
	lock       io.Closer

	enc      *zstd.Encoder // EncodeAll is safe for concurrent use
	dec      *zstd.Decoder // DecodeAll is safe for concurrent use
	ingest   chan struct{} // semaphore of IngestConcurrency
	workers  int           // hash/compress goroutines per Write
	bufs     sync.Pool     // *[]byte with cap >= MaxChunk
	chunkers sync.Pool     // *chunker.Chunker

	cache *FileCache // read cache of pack records; nil: none

	// With a backend that cannot adopt a local file (S3), sealed packs are
	// uploaded by a background goroutine so that no Write waits for it.
	kick         chan struct{} // wakes the uploader; cap 1
	stopUploader context.CancelFunc
	uploaderDone chan struct{}

	inflight sync.WaitGroup // Write and ReadChunk calls, waited for by Close

	mu       sync.Mutex // serializes appends; guards cur, closed, unsealed
	cur      *openPack  // pack receiving appends, nil until needed
	closed   bool
	unsealed []*openPack // trailer written, not yet handed to the backend

	packsMu sync.RWMutex
	open    map[string]*openPack // packs in staging/, readable by ReadChunk
}

// Open opens the store in opts.Dir, creating it if needed, and recovers the
// packs a crash left in staging/.
func Open(ctx context.Context, opts Options) (_ *Store, err error) {
	if opts.Dir == "" {
		return nil, errors.New("chunkstore: open: Options.Dir is empty")
	}
	if opts.PackSize == 0 {
		opts.PackSize = DefaultPackSize
	}
	if opts.PackSize < 0 {
		return nil, fmt.Errorf("chunkstore: open: negative PackSize %d", opts.PackSize)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinChunk == 0 {
		opts.MinChunk = DefaultMinChunk
	}
	if opts.MaxChunk == 0 {
		opts.MaxChunk = DefaultMaxChunk
	}
	if opts.AverageBits == 0 {
		opts.AverageBits = DefaultAverageBits
	}
	if opts.IngestConcurrency == 0 {
		opts.IngestConcurrency = runtime.GOMAXPROCS(0)
	}
	if opts.IngestConcurrency < 0 {
		return nil, fmt.Errorf("chunkstore: open: negative IngestConcurrency %d", opts.IngestConcurrency)
	}
	if err := validateChunkSizes(opts.MinChunk, opts.MaxChunk, opts.AverageBits); err != nil {
		return nil, fmt.Errorf("chunkstore: open: %w", err)
	}

	fsys := fsutil.OrDefault(opts.FS)
	stagingDir := filepath.Join(opts.Dir, stagingDirName)
	if err := fsutil.MkdirAll(fsys, stagingDir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: open: %w", err)
	}
	lock, err := lockStore(fsys, filepath.Join(opts.Dir, lockFileName))
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open: %w", err)
	}
	defer func() {
		if err != nil {
			_ = lock.Close()
		}
	}()

	cfg, created, err := loadOrCreateConfig(fsys, opts.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open: %w", err)
	}
	log := opts.Logger.With("component", "chunkstore")
	if created {
		log.Info("created store", "dir", opts.Dir, "polynomial", cfg.Polynomial,
			"min_chunk", cfg.MinChunk, "max_chunk", cfg.MaxChunk, "average_bits", cfg.AverageBits)
	} else if cfg.MinChunk != opts.MinChunk || cfg.MaxChunk != opts.MaxChunk || cfg.AverageBits != opts.AverageBits {
		log.Warn("chunk size options differ from the store's config; using the config",
			"min_chunk", cfg.MinChunk, "max_chunk", cfg.MaxChunk, "average_bits", cfg.AverageBits)
	}

	backend := opts.Backend
	if backend == nil {
		lb, err := NewLocalBackendFS(fsys, filepath.Join(opts.Dir, packsDirName))
		if err != nil {
			return nil, fmt.Errorf("chunkstore: open: %w", err)
		}
		backend = lb
	}

	procs := runtime.GOMAXPROCS(0)
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(opts.Compression.level()),
		zstd.WithEncoderConcurrency(procs),
		zstd.WithEncoderCRC(false), // records carry a CRC and the chunk ID
		// A chunk averages 1 MiB: a 1 MiB window loses almost nothing and
		// keeps each encoder's history small.
		zstd.WithWindowSize(1<<20),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(procs),
		zstd.WithDecoderMaxMemory(uint64(max(cfg.MaxChunk, 1<<20))),
		zstd.WithDecodeAllCapLimit(true), // never decode past the recorded raw length
	)
	if err != nil {
		_ = enc.Close()
		return nil, fmt.Errorf("chunkstore: open: zstd decoder: %w", err)
	}

	s := &Store{
		log:        log,
		fs:         fsys,
		backend:    backend,
		stagingDir: stagingDir,
		packSize:   opts.PackSize,
		cfg:        cfg,
		lock:       lock,
		enc:        enc,
		dec:        dec,
		ingest:     make(chan struct{}, opts.IngestConcurrency),
		workers:    min(procs, 4),
		open:       make(map[string]*openPack),
		kick:       make(chan struct{}, 1),
	}
	// Buffers are allocated at the largest chunk size once and reused:
	// growing them on demand churns large allocations, which costs more
	// resident memory than it saves.
	s.bufs.New = func() any {
		b := make([]byte, 0, cfg.MaxChunk)
		return &b
	}
	s.chunkers.New = func() any {
		return chunker.NewWithBoundaries(nil, cfg.Polynomial, uint(cfg.MinChunk), uint(cfg.MaxChunk))
	}
	if opts.ReadCacheSize > 0 {
		if opts.ReadCacheDir == "" {
			opts.ReadCacheDir = filepath.Join(opts.Dir, "cache")
		}
		if s.cache, err = OpenFileCache(opts.ReadCacheDir, opts.ReadCacheSize, log); err != nil {
			s.closeFiles()
			_ = enc.Close()
			dec.Close()
			return nil, fmt.Errorf("chunkstore: open: %w", err)
		}
	}
	if err := s.recoverStaging(ctx); err != nil {
		s.closeFiles()
		_ = enc.Close()
		dec.Close()
		return nil, fmt.Errorf("chunkstore: open: %w", err)
	}
	// Packs sealed but not handed over before a crash or a backend outage
	// go first; if the backend is still down they stay readable in staging
	// and the uploader keeps trying.
	if err := s.retryUnsealed(ctx); err != nil {
		s.log.Warn("staged packs not handed to the backend yet; will retry", "err", err)
	}
	if _, ok := s.backend.(Adopter); !ok {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopUploader = cancel
		s.uploaderDone = make(chan struct{})
		go s.uploader(ctx)
	}
	return s, nil
}

// Close seals the open pack, retries handing unsealed packs to the backend,
// and releases the store. It waits for running Write and ReadChunk calls.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	if s.stopUploader != nil {
		s.stopUploader()
		<-s.uploaderDone
	}

	ctx := context.Background()
	var errs []error
	s.mu.Lock()
	p := s.cur
	s.cur = nil
	s.mu.Unlock()
	if p != nil {
		if len(p.entries) == 0 {
			s.discard(p)
		} else if err := s.seal(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.retryUnsealed(ctx); err != nil {
		errs = append(errs, err)
	}
	if n := s.closeFiles(); n > 0 {
		s.log.Warn("packs left in staging, to be recovered at the next open", "packs", n)
	}
	errs = append(errs, s.enc.Close())
	s.dec.Close()
	errs = append(errs, s.lock.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chunkstore: close: %w", err)
	}
	return nil
}

// closeFiles closes the files of all packs still open and returns how many.
func (s *Store) closeFiles() int {
	s.packsMu.Lock()
	defer s.packsMu.Unlock()
	n := len(s.open)
	for name, p := range s.open {
		p.close()
		delete(s.open, name)
	}
	return n
}

// enter registers a Write or ReadChunk call, failing after Close.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

func (s *Store) getBuf() *[]byte { return s.bufs.Get().(*[]byte) }

func (s *Store) putBuf(b *[]byte) {
	if b != nil {
		*b = (*b)[:0]
		s.bufs.Put(b)
	}
}

// Stats describes the store's packs.
type Stats struct {
	Packs         int   // sealed packs in the backend
	PackBytes     int64 // their total size
	OpenPacks     int   // packs in staging/ (open, or sealed but not yet handed over)
	OpenPackBytes int64 // their total size
	CacheEntries  int   // records in the read cache
	CacheBytes    int64 // their total size
}

// Stats counts sealed packs with Backend.List, plus the packs in staging.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	s.packsMu.RLock()
	for _, p := range s.open {
		st.OpenPacks++
		st.OpenPackBytes += p.size.Load()
	}
	s.packsMu.RUnlock()
	st.CacheEntries, st.CacheBytes = s.cache.Usage()
	err := s.backend.List(ctx, func(name string, size int64) error {
		st.Packs++
		st.PackBytes += size
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("chunkstore: stats: %w", err)
	}
	return st, nil
}

// PackEntry is one chunk listed in a pack's trailer.
type PackEntry struct {
	ID  ID
	Loc Location
}

// ListPacks lists the sealed packs in the backend.
func (s *Store) ListPacks(ctx context.Context, fn func(name string, size int64) error) error {
	return s.backend.List(ctx, fn)
}

// ReadTrailer reads and checks the trailer of sealed pack, returning its
// chunks in pack order.
func (s *Store) ReadTrailer(ctx context.Context, pack string) ([]PackEntry, error) {
	size, err := s.packSizeOf(ctx, pack)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	if size < packHeaderLen+footerLen {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w: pack of %d bytes", pack, ErrCorrupt, size)
	}
	footer, err := s.readRange(ctx, pack, size-footerLen, footerLen)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	off, n, crc, err := parseFooter(footer, size)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	head, err := s.readRange(ctx, pack, 0, packHeaderLen)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	if err := checkPackHeader(head); err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	b, err := s.readRange(ctx, pack, off, n)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	entries, err := parseEntries(b, crc, off, pack, uint32(s.cfg.MaxChunk))
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read trailer of %s: %w", pack, err)
	}
	return entries, nil
}

func (s *Store) packSizeOf(ctx context.Context, pack string) (int64, error) {
	if st, ok := s.backend.(Stater); ok {
		return st.Stat(ctx, pack)
	}
	size := int64(-1)
	errFound := errors.New("found")
	err := s.backend.List(ctx, func(name string, n int64) error {
		if name == pack {
			size = n
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, err
	}
	if size < 0 {
		return 0, fmt.Errorf("pack %s: %w", pack, ErrNotExist)
	}
	return size, nil
}

// readRange reads a whole backend range into memory.
func (s *Store) readRange(ctx context.Context, pack string, off, n int64) ([]byte, error) {
	rc, err := s.backend.ReadRange(ctx, pack, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("read %s [%d, +%d): %w", pack, off, n, err)
	}
	return b, nil
}

// Compression is a zstd level for chunks.
type Compression string

// Chunk compression levels: zstd's fastest (~360 MB/s a core, weakest),
// default (~2x slower, clearly smaller on text and binaries) and better.
const (
	CompressFastest Compression = "fastest"
	CompressDefault Compression = "default"
	CompressBetter  Compression = "better"
)

func (c Compression) level() zstd.EncoderLevel {
	switch c {
	case CompressFastest:
		return zstd.SpeedFastest
	case CompressBetter:
		return zstd.SpeedBetterCompression
	}
	return zstd.SpeedDefault
}

// ParseCompression parses a level name ("" is the default).
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case "", CompressDefault:
		return CompressDefault, nil
	case CompressFastest, CompressBetter:
		return c, nil
	}
	return "", fmt.Errorf("chunkstore: compression %q: want fastest, default or better", s)
}
