// Package registry is the registry service behind the HTTP API: it owns
// upload sessions (spooled to disk), manifest validation, and the order of
// writes (chunks durable in packs, then the index batch, then the spool
// removed). It glues refgraph (names and counts), chunkstore (bytes) and
// assembler (reads); ocihttp calls it and speaks only HTTP.
//
// # Durability
//
// The upload spool and the pending dir live on Options.FS (a vfs.FS; the
// operating system's by default). A push is acknowledged only once what it
// stored survives a power loss, and nothing becomes visible before the
// data it names is durable:
//
//   - Upload sessions are not durable (nothing is fsynced while a PATCH
//     arrives); after a crash a session may have lost bytes, and the
//     digest check at commit refuses what does not match. Every read of a
//     spool file is bounded by the session's size.
//   - A blob stored as chunks (opaque, or a manifest) is written by
//     chunkstore, which fsyncs its packs before it returns; then one
//     synced index batch records it; then the client gets its 201.
//   - A layer left for the converter: its spool file is fsynced,
//     hard-linked into the pending dir (created durably, at New), the
//     pending dir fsynced, and only then is the blob indexed as pending
//     and acknowledged. pendingMu covers the link and the batch against the
//     removals of pending files by GC (BlobDeleted) and by the sweep at
//     converter start.
//   - A conversion writes its chunks (durable), then changes the blob in
//     one batch, then removes the pending file without an fsync: a file a
//     crash brings back is swept at the next converter start.
//
// A full disk or an I/O error under the data dir fails the request with
// ErrInsufficientStorage or ErrStorageFailure (ocihttp answers 507 or 500)
// and leaves what was stored as it was. A failed index (refgraph.ErrIndexFailed)
// takes no more writes: every write is refused with ErrStorageFailure
// until the process restarts.
package registry

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digest algorithms offered by go-digest
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options configure a Service.
type Options struct {
	// FS is the file system of UploadDir and Convert.PendingDir; nil
	// means vfs.Default, the operating system's. Tests pass a crashable
	// in-memory FS or one that injects errors.
	FS              vfs.FS
	UploadDir       string        // spool for upload sessions
	UploadTTL       time.Duration // idle sessions older than this expire; default 24h
	MaxManifestSize int64         // default 4 MiB
	Logger          *slog.Logger

	// LayerCache keeps encoded layers for hot pulls; nil: none.
	LayerCache *chunkstore.FileCache
	// MaxEncodes bounds the goroutines encoding layers, all layers
	// together (0: 2 per CPU); EncodeParallelism how many one layer's
	// encode may run (0: one per CPU). See assembler.Options.
	MaxEncodes        int
	EncodeParallelism int
	// Convert is how layers pushed opaque are split and re-chunked in the
	// background; zero Workers: no conversion.
	Convert ConvertOptions
	// Scan is how pushed images are scanned for vulnerabilities; zero
	// Workers: no scanning.
	Scan ScanOptions
	// UniformCommit makes the push of a blob the store already holds do
	// the same durable work as a new one (the upload is synced to disk
	// before it is linked), so that the time a push takes says less about
	// whether someone else stored those bytes (tenant isolation, see
	// README "Security").
	UniformCommit bool
	// Fallback, if not nil, supplies the manifests and blobs a pull asks
	// for and the registry lacks: they are served and stored (see
	// fallback.go). FallbackTagTTL is how long a tag resolved through it
	// is trusted before it is asked again (0: every pull asks).
	Fallback       Fallback
	FallbackTagTTL time.Duration
}

// Service implements the registry operations over the index and the store.
type Service struct {
	fs      vfs.FS
	graph   *refgraph.Graph
	store   *chunkstore.Store
	asm     *assembler.Assembler
	uploads *uploads
	maxMan  int64
	log     *slog.Logger
	convert ConvertOptions
	kick    chan struct{}         // wakes the converter
	layers  *chunkstore.FileCache // encoded layers; nil: none

	pendingMu sync.Mutex // commitPending against BlobDeleted and sweepPending
	pulls     pullTimes
	pushes    pushActivity // uploads in flight, which conversions yield to
	converted convertCounters
	scans     *scanner
	uniform   bool      // Options.UniformCommit
	fb        *fallback // nil: no fallback
}

// New returns a Service. It does not own graph and store: the caller closes
// them after the service is done.
func New(graph *refgraph.Graph, store *chunkstore.Store, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UploadTTL <= 0 {
		opts.UploadTTL = 24 * time.Hour
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = 4 << 20
	}
	fsys := fsutil.OrDefault(opts.FS)
	up, err := newUploads(fsys, opts.UploadDir, opts.UploadTTL, opts.Logger)
	if err != nil {
		return nil, err
	}
	if opts.Convert.Workers > 0 {
		if opts.Convert.PendingDir == "" {
			return nil, errors.New("registry: conversion needs a pending dir")
		}
		// Durably: acknowledged layers wait in it.
		if err := fsutil.MkdirAll(fsys, opts.Convert.PendingDir, 0o750); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	opts.Convert.setDefaults() // scans read opaque layers within its limits
	return &Service{
		fs:    fsys,
		graph: graph,
		store: store,
		asm: assembler.New(graph, store, assembler.Options{
			LayerCache:        opts.LayerCache,
			MaxEncodes:        opts.MaxEncodes,
			EncodeParallelism: opts.EncodeParallelism,
			Logger:            opts.Logger,
		}),
		convert: opts.Convert,
		kick:    make(chan struct{}, 1),
		layers:  opts.LayerCache,
		uploads: up,
		maxMan:  opts.MaxManifestSize,
		log:     opts.Logger,
		scans:   newScanner(graph, opts.Scan),
		uniform: opts.UniformCommit,
		fb:      newFallback(opts.Fallback, opts.FallbackTagTTL),
	}, nil
}

// Close stops the layer encodes the service runs for its cache, and the
// fetches from the fallback; call it after the last request, before
// closing the index and the store.
func (s *Service) Close() {
	s.fb.close()
	s.asm.Close()
}

// ConvertStats counts the layers converted (split) since New.
type ConvertStats struct {
	Layers   int64 // split layers converted
	TarBytes int64 // their tars' bytes
	// EncodedBytes is the raw bytes fed to encoders by their conversions,
	// matching trials and abandoned ones together: about TarBytes when
	// each layer is encoded once.
	EncodedBytes int64
}

type convertCounters struct{ layers, tarBytes, encoded atomic.Int64 }

// ConvertStats returns the conversion counters since New.
func (s *Service) ConvertStats() ConvertStats {
	return ConvertStats{Layers: s.converted.layers.Load(), TarBytes: s.converted.tarBytes.Load(), EncodedBytes: s.converted.encoded.Load()}
}

// LayerStats counts how layers were served (cache hits, encodes).
func (s *Service) LayerStats() assembler.LayerStats { return s.asm.Stats() }

// Run expires idle upload sessions and runs the converter until ctx is
// done.
func (s *Service) Run(ctx context.Context) {
	migrated := make(chan struct{})
	go func() {
		defer close(migrated)
		defer s.survive("migration")
		s.migrateRefs(ctx)
	}()
	defer func() { <-migrated }()
	if s.convert.Workers > 0 {
		done := make(chan struct{})
		go func() {
			s.runConverter(ctx)
			close(done)
		}()
		defer func() { <-done }()
	}
	if s.scans.on() {
		done := make(chan struct{}, 2)
		go func() { s.runScanner(ctx); done <- struct{}{} }()
		go func() { s.runRematcher(ctx); done <- struct{}{} }()
		defer func() { <-done; <-done }()
	}
	tick := time.NewTicker(min(s.uploads.ttl/4, time.Minute))
	defer tick.Stop()
	defer s.FlushPulls()
	for {
		s.uploads.expire(time.Now())
		s.FlushPulls()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pullTimes collects when manifests were pulled, written to the index in
// one batch a minute (retention's keep_pulled_within reads them).
type pullTimes struct {
	mu sync.Mutex
	m  map[[2]string]time.Time
}

func (p *pullTimes) touch(repo string, d digest.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[[2]string]time.Time{}
	}
	p.m[[2]string{repo, string(d)}] = time.Now()
}

// FlushPulls writes the pull times collected since the last flush.
func (s *Service) FlushPulls() {
	s.pulls.mu.Lock()
	m := s.pulls.m
	s.pulls.m = nil
	s.pulls.mu.Unlock()
	if len(m) == 0 {
		return
	}
	if err := s.graph.RecordPulls(m); err != nil {
		s.log.Warn("recording pull times", "err", err)
	}
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrDigestInvalid, d, err)
	}
	return nil
}

// StatBlob returns the size of blob d as seen from repo.
func (s *Service) StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	b, err := s.linkedBlob(repo, d)
	if s.fb != nil && errors.Is(err, ErrBlobUnknown) {
		return s.fallbackStatBlob(ctx, repo, d)
	}
	return b.Size, err
}

// linkedBlob returns blob d if repo may read it: a blob link or a manifest.
func (s *Service) linkedBlob(repo string, d digest.Digest) (refgraph.Blob, error) {
	if err := checkDigest(d); err != nil {
		return refgraph.Blob{}, err
	}
	ok, err := s.graph.Linked(repo, d)
	if err != nil {
		return refgraph.Blob{}, err
	}
	if !ok {
		if _, err := s.graph.Manifest(repo, d); err != nil {
			return refgraph.Blob{}, notFound(err, ErrBlobUnknown, d)
		}
	}
	b, err := s.graph.Blob(d)
	return b, notFound(err, ErrBlobUnknown, d)
}

// notFound maps the index's ErrNotFound to class, passing other errors on.
func notFound(err, class error, what any) error {
	if errors.Is(err, refgraph.ErrNotFound) {
		return fmt.Errorf("%w: %v", class, what)
	}
	return err
}

// OpenBlob returns a reader of length bytes of blob d from off, and the
// blob's size. length < 0 means to the end.
func (s *Service) OpenBlob(ctx context.Context, repo string, d digest.Digest, off, length int64) (io.ReadCloser, int64, error) {
	if s.fb != nil {
		if _, err := s.linkedBlob(repo, d); errors.Is(err, ErrBlobUnknown) {
			return s.fallbackOpenBlob(ctx, repo, d, off, length)
		}
	}
	return s.openLocalBlob(ctx, repo, d, off, length)
}

func (s *Service) openLocalBlob(ctx context.Context, repo string, d digest.Digest, off, length int64) (_ io.ReadCloser, _ int64, err error) {
	defer guard(&err)
	for attempt := 0; ; attempt++ {
		b, err := s.linkedBlob(repo, d)
		if err != nil {
			return nil, 0, err
		}
		if length < 0 {
			length = b.Size - off
		}
		if off < 0 || length < 0 || off+length > b.Size {
			return nil, b.Size, fmt.Errorf("%w: %d+%d of %d bytes", ErrRangeInvalid, off, length, b.Size)
		}
		if b.Kind != refgraph.KindPending {
			r, err := s.asm.Open(ctx, recipe(b), off, length)
			return r, b.Size, err
		}
		f, ok, err := s.openPending(d)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			if off == 0 && length == b.Size {
				return assembler.Verify(sectionFile{io.NewSectionReader(f, 0, b.Size), f}, d, b.Size), b.Size, nil
			}
			return sectionFile{io.NewSectionReader(f, off, length), f}, b.Size, nil
		}
		if attempt > 0 { // converted since we looked: look again, once
			return nil, 0, fmt.Errorf("registry: pending blob %s has no file", d)
		}
	}
}

// DeleteBlob removes repo's link to blob d.
func (s *Service) DeleteBlob(ctx context.Context, repo string, d digest.Digest) (err error) {
	defer guard(&err)
	if err := checkDigest(d); err != nil {
		return err
	}
	return notFound(s.graph.UnlinkBlob(repo, d), ErrBlobUnknown, d)
}

// MountBlob links blob d into repo if from (or, with from empty, any
// repository) has it. ErrBlobUnknown means the caller should upload.
func (s *Service) MountBlob(ctx context.Context, repo, from string, d digest.Digest) (err error) {
	defer guard(&err)
	if err := checkDigest(d); err != nil {
		return err
	}
	if from != "" {
		if err := ValidateName(from); err != nil {
			return err
		}
		if _, err := s.linkedBlob(from, d); err != nil {
			return err
		}
	}
	return notFound(s.graph.LinkBlob(repo, d), ErrBlobUnknown, d)
}

// StartUpload opens an upload session in repo and returns its id.
func (s *Service) StartUpload(ctx context.Context, repo string) (_ string, err error) {
	defer guard(&err)
	sess, err := s.uploads.start(repo)
	if err != nil {
		return "", err
	}
	return sess.id, nil
}

// UploadStatus returns how many bytes session id holds.
func (s *Service) UploadStatus(ctx context.Context, repo, id string) (int64, error) {
	sess, err := s.uploads.get(repo, id)
	if err != nil {
		return 0, err
	}
	defer sess.mu.Unlock()
	return sess.size, nil
}

// AppendUpload appends r to session id; offset >= 0 must be the session's
// current size. It returns the new size.
func (s *Service) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (_ int64, err error) {
	defer guard(&err)
	defer s.pushes.begin()()
	sess, err := s.uploads.get(repo, id)
	if err != nil {
		return 0, err
	}
	defer sess.mu.Unlock()
	err = s.uploads.append(ctx, sess, offset, r)
	return sess.size, err
}

// CancelUpload drops session id.
func (s *Service) CancelUpload(ctx context.Context, repo, id string) (err error) {
	defer guard(&err)
	sess, err := s.uploads.get(repo, id)
	if err != nil {
		return err
	}
	defer sess.mu.Unlock()
	s.uploads.finish(sess)
	return nil
}

// FinishUpload appends r (may be empty) with the given Content-Range start
// (offset < 0: unchecked), checks the whole upload against d, and commits
// it as blob d of repo. The session ends whether or not this succeeds,
// unless the error is ErrRangeInvalid.
func (s *Service) FinishUpload(ctx context.Context, repo, id string, d digest.Digest, offset int64, r io.Reader) (err error) {
	defer guard(&err)
	defer s.pushes.begin()()
	if err := checkDigest(d); err != nil {
		return err
	}
	sess, err := s.uploads.get(repo, id)
	if err != nil {
		return err
	}
	defer sess.mu.Unlock()
	if err := s.uploads.append(ctx, sess, offset, r); err != nil {
		return err
	}
	defer s.uploads.finish(sess)
	got, err := sess.digest(s.fs, d.Algorithm())
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("%w: upload is %s, client said %s", ErrDigestInvalid, got, d)
	}
	f, err := s.fs.Open(sess.path)
	if err != nil {
		return fmt.Errorf("registry: upload %s: %w", id, err)
	}
	defer f.Close()
	return s.commit(ctx, repo, d, sess.size, sess.path, f)
}

// digest returns the digest of the session's bytes with algo, from the
// running hash if it has one.
func (sess *session) digest(fsys vfs.FS, algo digest.Algorithm) (digest.Digest, error) {
	if algo == digest.SHA256 && sess.h != nil {
		return digest.NewDigestFromBytes(algo, sess.h.Sum(nil)), nil
	}
	if !algo.Available() {
		return "", fmt.Errorf("%w: digest algorithm %q", ErrDigestInvalid, algo)
	}
	f, err := fsys.Open(sess.path)
	if err != nil {
		return "", fmt.Errorf("registry: upload %s: %w", sess.id, err)
	}
	defer f.Close()
	return algo.FromReader(io.NewSectionReader(f, 0, sess.size))
}

// commit stores the verified content of blob d (the first size bytes of
// the file at path, open as f) and links it into repo: data durable first
// (chunks in packs, or the file itself for a layer pending conversion),
// then the index batch.
func (s *Service) commit(ctx context.Context, repo string, d digest.Digest, size int64, path string, f vfs.File) error {
	if _, err := s.graph.Blob(d); err == nil {
		if s.uniform { // as commitPending: the file, then a directory
			if err := s.syncSpool(d, path); err != nil {
				return err
			}
			if err := fsutil.SyncDir(s.fs, filepath.Dir(path)); err != nil {
				return fmt.Errorf("registry: blob %s: %w", d, err)
			}
		}
		// Garbage collection may remove the blob before the link lands:
		// then it is stored again below.
		if err := s.graph.LinkBlob(repo, d); !errors.Is(err, refgraph.ErrNotFound) {
			return err
		}
	}
	if s.convert.Workers > 0 {
		prefix := make([]byte, min(512, size))
		n, _ := f.ReadAt(prefix, 0)
		if layerCandidate(prefix[:n]) {
			return s.commitPending(repo, d, size, path)
		}
	}
	for attempt := 0; ; attempt++ {
		// A new reader each attempt: bounded by size, for a spool file a
		// failed append left longer.
		chunks, n, err := s.store.Write(ctx, io.NewSectionReader(f, 0, size), s.knownChunk)
		if err != nil {
			return fmt.Errorf("registry: store blob %s: %w", d, err)
		}
		if n != size {
			return fmt.Errorf("registry: blob %s: stored %d bytes of %d", d, n, size)
		}
		err = s.graph.CommitBlob(repo, d, size, chunks)
		if !errors.Is(err, refgraph.ErrChunkMissing) || attempt > 0 {
			return err
		}
		// A chunk we deduplicated against was reclaimed meanwhile: write
		// the blob again.
	}
}

func (s *Service) knownChunk(id chunkstore.ID) bool {
	ok, err := s.graph.HasChunk(id)
	if err != nil {
		s.log.Warn("chunk lookup failed; storing the chunk again", "chunk", id, "err", err)
	}
	return ok
}

// Catalog lists repositories after last, at most n (n < 0: all).
func (s *Service) Catalog(ctx context.Context, last string, n int) ([]string, bool, error) {
	return s.graph.Repos(last, n)
}

// Tags lists repo's tags after last, at most n (n < 0: all).
func (s *Service) Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	ok, err := s.graph.RepoExists(repo)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, fmt.Errorf("%w: %s", ErrNameUnknown, repo)
	}
	return s.graph.Tags(repo, last, n)
}

// Referrers lists the manifests in repo whose subject is d, filtered by
// artifactType if not empty.
func (s *Service) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	all, err := s.graph.Referrers(repo, d)
	if err != nil || artifactType == "" {
		return all, err
	}
	out := all[:0]
	for _, desc := range all {
		if desc.ArtifactType == artifactType {
			out = append(out, desc)
		}
	}
	return out, nil
}

// readAll reads a whole small blob (a manifest).
func (s *Service) readAll(ctx context.Context, b refgraph.Blob) ([]byte, error) {
	r, err := s.asm.Open(ctx, recipe(b), 0, b.Size)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	buf.Grow(int(b.Size))
	if _, err := io.Copy(&buf, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// recipe is what the assembler needs of an index record.
func recipe(b refgraph.Blob) assembler.Blob {
	return assembler.Blob{Digest: b.Digest, Size: b.Size, Chunks: b.Chunks, Layout: b.Layout}
}
