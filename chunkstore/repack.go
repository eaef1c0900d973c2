package chunkstore

import (
	"context"
	"fmt"
	"hash/crc32"
	"slices"
)

// maxRewriteSpan bounds one ranged read of Rewrite (and its memory).
const maxRewriteSpan = 8 << 20

// Rewrite copies chunks (typically the live ones of a pack being
// repacked) into the current pack, each verified first (record header,
// CRC, and the content against its ID), without recompressing. It returns
// the chunks at their new locations, durable like Write's, in the order
// given. Neighbouring records are read in ranges of up to 8 MiB.
func (s *Store) Rewrite(ctx context.Context, chunks []ChunkRead) ([]Chunk, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("chunkstore: rewrite: %w", err)
	}
	defer s.inflight.Done()
	order := make([]int, len(chunks))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		la, lb := chunks[a].Loc, chunks[b].Loc
		if la.Pack != lb.Pack {
			if la.Pack < lb.Pack {
				return -1
			}
			return 1
		}
		return int(la.Offset - lb.Offset)
	})
	out := make([]Chunk, len(chunks))
	touched := map[*openPack]int64{}
	raw := make([]byte, s.cfg.MaxChunk)
	for start := 0; start < len(order); {
		// A span: records of one pack, in order, within maxRewriteSpan.
		first := chunks[order[start]].Loc
		spanOff := first.Offset - recordHeaderLen
		end := start
		spanEnd := spanOff
		for end < len(order) {
			l := chunks[order[end]].Loc
			recEnd := l.Offset + int64(l.StoredLen)
			if l.Pack != first.Pack || l.Offset-recordHeaderLen < spanEnd || (end > start && recEnd-spanOff > maxRewriteSpan) {
				break
			}
			spanEnd = recEnd
			end++
		}
		if end == start { // overlapping or repeated locations: take one at a time
			end, spanEnd = start+1, first.Offset+int64(first.StoredLen)
		}
		buf, err := s.readRange(ctx, first.Pack, spanOff, spanEnd-spanOff)
		if err != nil {
			return nil, fmt.Errorf("chunkstore: rewrite: %w", shortRead(err))
		}
		for _, i := range order[start:end] {
			c := chunks[i]
			recOff := c.Loc.Offset - recordHeaderLen - spanOff
			rec := buf[recOff : recOff+recordHeaderLen+int64(c.Loc.StoredLen)]
			// Always hashed (SkipHash ignored): a repack copies verified records only.
			if _, err := s.decodeRecord(rec, ChunkRead{ID: c.ID, Loc: c.Loc}, raw); err != nil {
				return nil, fmt.Errorf("chunkstore: rewrite chunk %s of pack %s: %w", c.ID, c.Loc.Pack, err)
			}
			stored := rec[recordHeaderLen:]
			loc, p, full, err := s.appendRecord(c.ID, c.Loc.RawLen, stored, c.Loc.Compressed, crc32.Checksum(stored, crcTable()))
			if err != nil {
				return nil, fmt.Errorf("chunkstore: rewrite: %w", err)
			}
			touched[p] = max(touched[p], loc.Offset+int64(loc.StoredLen))
			if full != nil {
				_ = s.seal(ctx, full) // as in Write: a failure surfaces in syncTo or is retried
			}
			out[i] = Chunk{ID: c.ID, RawLen: c.Loc.RawLen, Loc: &loc}
		}
		start = end
	}
	for p, end := range touched {
		if err := p.syncTo(end); err != nil {
			return nil, fmt.Errorf("chunkstore: rewrite: %w", err)
		}
	}
	return out, nil
}

// DeletePack removes a sealed pack from the backend. The index must no
// longer point into it; deleting a missing pack is not an error.
func (s *Store) DeletePack(ctx context.Context, name string) error {
	if !isPackName(name) {
		return fmt.Errorf("chunkstore: delete pack: bad name %q", name)
	}
	if err := s.backend.Delete(ctx, name); err != nil {
		return fmt.Errorf("chunkstore: delete pack %s: %w", name, err)
	}
	return nil
}

// OpenPacks lists the packs being written or sealed but not yet in the
// backend (staged for upload).
func (s *Store) OpenPacks() []string {
	s.packsMu.RLock()
	defer s.packsMu.RUnlock()
	names := make([]string, 0, len(s.open))
	for name := range s.open {
		names = append(names, name)
	}
	return names
}

// PackSize is the size at which packs are sealed.
func (s *Store) PackSize() int64 { return s.packSize }

// SealOpen seals the pack receiving appends if it is named name and holds
// chunks, so that garbage collection can repack it (a pack that stays
// open on a quiet registry would otherwise keep its dead chunks until it
// fills). It reports whether it sealed the pack.
func (s *Store) SealOpen(ctx context.Context, name string) (bool, error) {
	if err := s.enter(); err != nil {
		return false, fmt.Errorf("chunkstore: seal: %w", err)
	}
	defer s.inflight.Done()
	s.mu.Lock()
	p := s.cur
	if p == nil || p.name != name || len(p.entries) == 0 {
		s.mu.Unlock()
		return false, nil
	}
	s.cur = nil
	s.mu.Unlock()
	if err := s.seal(ctx, p); err != nil {
		return false, fmt.Errorf("chunkstore: seal: %w", err)
	}
	return true, nil
}
