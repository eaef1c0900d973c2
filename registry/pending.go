package registry

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
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
// (the caller removes the spool file).
func (s *Service) commitPending(repo string, d digest.Digest, size int64, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("registry: pending blob %s: fsync: %w", d, err)
	}
	// Link, not rename: a file already there (the same bytes, pushed
	// concurrently or before) must not be replaced under its readers.
	dst := s.pendingPath(d)
	mine := true
	// Against BlobDeleted: a file left by a blob GC just deleted must not
	// be removed once this push has indexed the blob again.
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	if err := os.Link(path, dst); errors.Is(err, os.ErrExist) {
		mine = false
	} else if err != nil {
		return fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	if err := syncDir(s.convert.PendingDir); err != nil {
		return err
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
		os.Remove(dst)
	}
	return nil
}

// openPending opens the file of a pending blob; ok=false if it is gone
// (converted meanwhile: look the blob up again).
func (s *Service) openPending(d digest.Digest) (*os.File, bool, error) {
	f, err := os.Open(s.pendingPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("registry: pending blob %s: %w", d, err)
	}
	return f, true, nil
}

// sweepPending removes pending files the index does not need (converted
// before a crash removed them, or never committed) and temporary files.
func (s *Service) sweepPending() error {
	entries, err := os.ReadDir(s.convert.PendingDir)
	if err != nil {
		return fmt.Errorf("registry: pending dir: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(s.convert.PendingDir, e.Name())
		algo, hex, ok := strings.Cut(e.Name(), "-")
		d := digest.NewDigestFromEncoded(digest.Algorithm(algo), hex)
		if ok && d.Validate() == nil {
			b, err := s.graph.Blob(d)
			if err == nil && b.Kind == refgraph.KindPending {
				continue
			}
			if err != nil && !errors.Is(err, refgraph.ErrNotFound) {
				return err
			}
		}
		s.log.Info("removing stale pending file", "path", path)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// sectionFile reads length bytes at off of f and closes f at the end.
type sectionFile struct {
	*io.SectionReader
	f *os.File
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
	if err := os.Remove(s.pendingPath(b.Digest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("removing the pending file of a deleted blob", "digest", b.Digest, "err", err)
	}
}
