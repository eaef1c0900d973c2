package chunkstore

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// recoverSuffix names the temporary file a recovery rebuilds a pack in:
// "." + pack name + recoverSuffix, in staging/.
const recoverSuffix = ".recover"

// recoverStaging seals every pack left in staging/ by a crash: it keeps the
// records up to the first damaged or torn one, drops the rest, writes the
// trailer and hands the pack to the backend. A pack that was sealed
// before the crash (its trailer lists exactly the records that check out)
// is handed over as it is. Packs without a valid record are deleted, and
// so are the temporary files of a recovery the crash interrupted.
func (s *Store) recoverStaging(ctx context.Context) error {
	names, err := s.fs.List(s.stagingDir)
	if err != nil {
		return fmt.Errorf("recover staging: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("recover staging: %w", err)
		}
		path := filepath.Join(s.stagingDir, name)
		if tmp, ok := strings.CutSuffix(name, recoverSuffix); ok && strings.HasPrefix(tmp, ".") && isPackName(tmp[1:]) {
			if err := fsutil.RemoveDurably(s.fs, path); err != nil {
				return fmt.Errorf("recover staging: %w", err)
			}
			continue
		}
		st, err := s.fs.Stat(path)
		if err != nil {
			return fmt.Errorf("recover staging: %w", err)
		}
		if !st.Mode().IsRegular() || !isPackName(name) {
			s.log.Warn("ignoring unexpected file in staging", "file", path)
			continue
		}
		if err := s.recoverPack(ctx, name); err != nil {
			return fmt.Errorf("recover staging pack %s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) recoverPack(ctx context.Context, name string) error {
	path := filepath.Join(s.stagingDir, name)
	f, err := s.fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	size := st.Size()
	entries, end, err := scanRecords(f, size, name, uint32(s.cfg.MaxChunk))
	if err != nil {
		_ = f.Close()
		return err
	}
	if len(entries) == 0 {
		_ = f.Close()
		if err := fsutil.RemoveDurably(s.fs, path); err != nil {
			return err
		}
		s.log.Info("recovery: deleted staging pack without valid records", "pack", name, "bytes", size)
		return nil
	}
	p := &openPack{name: name, path: path, f: f, entries: entries}
	p.size.Store(end)
	if size > end && s.sealedIntact(f, size, end, entries, name) {
		// Sealed before the crash, not handed over yet: durable as it is.
		p.synced = end
		s.log.Info("recovery: handing over a sealed staging pack", "pack", name, "chunks", len(entries))
		s.packsMu.Lock()
		s.open[name] = p
		s.packsMu.Unlock()
		return s.queueOrHandOver(ctx, p)
	}
	s.log.Info("recovery: sealing staging pack", "pack", name, "chunks", len(entries),
		"kept_bytes", end, "dropped_bytes", size-end)
	if size > end {
		// A torn or damaged tail: the trailer must end the file, and
		// vfs.FS cannot cut one, so the kept records go to a new file
		// that replaces this one.
		nf, err := s.rebuildPack(f, name, end)
		_ = f.Close()
		if err != nil {
			return err
		}
		p.f = nf
	}
	s.packsMu.Lock()
	s.open[name] = p
	s.packsMu.Unlock()
	if err := s.seal(ctx, p); err != nil {
		// The trailer is durable and the pack stays readable from staging;
		// only a failed hand-over is retried later, anything else is fatal.
		if p.err() != nil {
			return err
		}
	}
	return nil
}

// sealedIntact reports whether the pack file of size bytes ends in a
// trailer that lists exactly the entries the scan found, ending at end.
func (s *Store) sealedIntact(f vfs.File, size, end int64, entries []PackEntry, name string) bool {
	if size-end != int64(len(entries))*entryLen+footerLen {
		return false
	}
	b := make([]byte, size-end)
	if _, err := f.ReadAt(b, end); err != nil {
		return false
	}
	footerOff := len(b) - footerLen
	eOff, _, crc, err := parseFooter(b[footerOff:], size)
	if err != nil || eOff != end {
		return false
	}
	listed, err := parseEntries(b[:footerOff], crc, eOff, name, uint32(s.cfg.MaxChunk))
	return err == nil && slices.Equal(listed, entries)
}

// rebuildPack copies the first end bytes of pack name (open as f) into a
// temporary file, syncs it, renames it over the pack and syncs staging/.
// It returns the new file, open for writing the trailer.
func (s *Store) rebuildPack(f vfs.File, name string, end int64) (vfs.File, error) {
	tmp := filepath.Join(s.stagingDir, "."+name+recoverSuffix)
	nf, err := s.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	fail := func(err error) (vfs.File, error) {
		_ = nf.Close()
		_ = s.fs.Remove(tmp)
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if _, err := io.Copy(nf, io.NewSectionReader(f, 0, end)); err != nil {
		return fail(err)
	}
	if err := nf.Sync(); err != nil {
		return fail(err)
	}
	if err := s.fs.Rename(tmp, filepath.Join(s.stagingDir, name)); err != nil {
		return fail(err)
	}
	if err := s.syncDir(s.stagingDir); err != nil {
		_ = nf.Close()
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	return nf, nil
}

// queueOrHandOver hands a sealed pack to the backend: at once for one
// that adopts local files, through the uploader otherwise. A failed
// hand-over is retried later; the pack stays readable in staging/.
func (s *Store) queueOrHandOver(ctx context.Context, p *openPack) error {
	if _, ok := s.backend.(Adopter); ok {
		err := s.handOver(ctx, p)
		if err == nil {
			return nil
		}
		s.log.Error("handing sealed pack to backend failed; will retry", "pack", p.name, "err", err)
	}
	s.mu.Lock()
	s.unsealed = append(s.unsealed, p)
	s.mu.Unlock()
	return nil
}
