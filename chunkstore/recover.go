package chunkstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// recoverStaging seals every pack left in staging/ by a crash: it keeps the
// records up to the first damaged or torn one, cuts the rest, writes the
// trailer and hands the pack to the backend. Packs without a valid record
// are deleted.
func (s *Store) recoverStaging(ctx context.Context) error {
	ents, err := os.ReadDir(s.stagingDir)
	if err != nil {
		return fmt.Errorf("recover staging: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("recover staging: %w", err)
		}
		if !e.Type().IsRegular() || !isPackName(e.Name()) {
			s.log.Warn("ignoring unexpected file in staging", "file", filepath.Join(s.stagingDir, e.Name()))
			continue
		}
		if err := s.recoverPack(ctx, e.Name()); err != nil {
			return fmt.Errorf("recover staging pack %s: %w", e.Name(), err)
		}
	}
	return nil
}

func (s *Store) recoverPack(ctx context.Context, name string) error {
	path := filepath.Join(s.stagingDir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	entries, end, err := scanRecords(f, st.Size(), name, uint32(s.cfg.MaxChunk))
	if err != nil {
		_ = f.Close()
		return err
	}
	if len(entries) == 0 {
		_ = f.Close()
		if err := os.Remove(path); err != nil {
			return err
		}
		if err := syncDir(s.stagingDir); err != nil {
			return err
		}
		s.log.Info("recovery: deleted staging pack without valid records", "pack", name, "bytes", st.Size())
		return nil
	}
	s.log.Info("recovery: sealing staging pack", "pack", name, "chunks", len(entries),
		"kept_bytes", end, "dropped_bytes", st.Size()-end)

	p := &openPack{name: name, path: path, f: f, entries: entries}
	p.size.Store(end)
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
