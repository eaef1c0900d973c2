package registry

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/opencontainers/go-digest"
)

// Pending blobs. A blob that may be a layer (gzip or zstd magic, or a tar
// header) is acknowledged as received: its spool file is fsynced and moved
// to the pending directory, and the index records it as KindPending and
// queues it, in one batch. Pulls read the file until the background
// converter has chunked the blob (split, if it is a layer); then the file
// goes. So a push costs no more than a plain registry's, and no raw copy
// is ever written into packs only to become garbage.

// pendingPath is where blob d waits to be converted.
func (s *Service) pendingPath(d digest.Digest) string {
	return filepath.Join(s.convert.PendingDir, string(d.Algorithm())+"-"+d.Encoded())
}

// layerCandidate reports whether a blob that starts with prefix may be a
// layer worth converting.
func layerCandidate(prefix []byte) bool {
	return codec.Detect(prefix) != "" || isTar(prefix)
}

// isTar looks for a ustar or GNU tar magic in the first header block.
func isTar(prefix []byte) bool {
	return len(prefix) >= 263 && (string(prefix[257:262]) == "ustar")
}

// commitPending makes the spool file at path blob d, pending conversion
// (the caller removes the spool file): the file is fsynced, hard-linked
// into the pending dir, that directory fsynced, and only then is the blob
// indexed.
func (s *Service) commitPending(repo string, d digest.Digest, size int64, path string) error {
	if err := s.syncSpool(d, path); err != nil {
		return err
	}
	// Link, not rename: a file already there (the same bytes, pushed
	// concurrently or before) must not be replaced under its readers.
	dst := s.pendingPath(d)
	mine := true
	// Against BlobDeleted: a file left by a blob GC just deleted must not
	// be removed once this push has indexed the blob again.
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if err := s.fs.Link(path, dst); errors.Is(err, fs.ErrExist) {
		mine = false
	} else if err != nil {
		return fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	if err := fsutil.SyncDir(s.fs, s.convert.PendingDir); err != nil {
		return fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	created, err := s.graph.CommitPending(repo, d, size)
	if err != nil {
		return err // a file left behind goes in the start-up sweep
	}
	if created {
		s.kickConverter()
		return nil
	}
	// Indexed already. The file is still needed if the blob is pending
	// (another push of the same bytes got there first).
	if b, err := s.graph.Blob(d); mine && err == nil && b.Kind != refgraph.KindPending {
		s.fs.Remove(dst)
	}
	return nil
}

// openPending opens the file of a pending blob; ok=false if it is gone
// (converted meanwhile: look the blob up again). Read it only up to the
// blob's size: a spool file a failed append left longer is linked as it
// is.
func (s *Service) openPending(d digest.Digest) (vfs.File, bool, error) {
	f, err := s.fs.Open(s.pendingPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	return f, true, nil
}

// sweepPending removes pending files the index does not need (converted
// before a crash removed them, or never committed) and temporary files.
// It runs while pushes are served: each file is judged under pendingMu,
// which commitPending holds from its link to its index batch, so a file a
// push has linked but not indexed yet is never taken for stale.
func (s *Service) sweepPending() error {
	names, err := s.fs.List(s.convert.PendingDir)
	if err != nil {
		return fmt.Errorf("registry: pending dir: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := s.sweepPendingFile(name); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) sweepPendingFile(name string) error {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	path := filepath.Join(s.convert.PendingDir, name)
	algo, hex, ok := strings.Cut(name, "-")
	d := digest.NewDigestFromEncoded(digest.Algorithm(algo), hex)
	if ok && d.Validate() == nil {
		b, err := s.graph.Blob(d)
		if err == nil && b.Kind == refgraph.KindPending {
			return nil
		}
		if err != nil && !errors.Is(err, refgraph.ErrNotFound) {
			return err
		}
	}
	s.log.Info("removing stale pending file", "path", path)
	if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// sectionFile reads length bytes at off of f and closes f at the end.
type sectionFile struct {
	*io.SectionReader
	f vfs.File
}

func (s sectionFile) Close() error { return s.f.Close() }

// overlay finds chunks a conversion has written but not indexed yet, and
// the rest in the index.
type overlay struct {
	graph   *refgraph.Graph
	written map[chunkstore.ID]chunkstore.Location
}

func (o overlay) Chunk(id chunkstore.ID) (refgraph.Chunk, error) {
	if loc, ok := o.written[id]; ok {
		return refgraph.Chunk{ID: id, Refs: 1, Loc: loc}, nil
	}
	return o.graph.Chunk(id)
}

// BlobDeleted removes what blob b, just deleted from the index by garbage
// collection, left outside it: its pending file (unless a push indexed the
// blob again meanwhile), its cached encoding, its scan records.
func (s *Service) BlobDeleted(b refgraph.Blob) {
	s.scanBlobDeleted(b.Digest)
	if s.layers != nil {
		s.layers.Drop(assembler.LayerCacheKey(b.Digest))
	}
	if b.Kind != refgraph.KindPending {
		return
	}
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if _, err := s.graph.Blob(b.Digest); !errors.Is(err, refgraph.ErrNotFound) {
		return // indexed again (or the lookup failed: the start-up sweep decides)
	}
	if err := s.fs.Remove(s.pendingPath(b.Digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("removing the pending file of a deleted blob", "digest", b.Digest, "err", err)
	}
}

// syncSpool fsyncs the upload file of blob d.
func (s *Service) syncSpool(d digest.Digest, path string) error {
	// Opened for writing: not every system fsyncs a read-only descriptor.
	// The session is locked and its file there, so this creates nothing.
	f, err := s.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("registry: pending blob %s: fsync: %w", d, err)
	}
	return nil
}
