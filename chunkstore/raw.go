package chunkstore

import (
	"context"
	"fmt"
	"hash/crc32"
)

// StoredChunk is a chunk as it is stored in a pack: its stored bytes
// (one zstd frame when Compressed, else the raw bytes) and its lengths.
// Replication ships chunks in this form, so that neither side decodes and
// re-compresses them beyond the check of the content against the ID.
type StoredChunk struct {
	ID         ID
	RawLen     uint32
	Compressed bool
	Stored     []byte
}

// MaxChunk is the largest raw chunk this store accepts (its config).
func (s *Store) MaxChunk() int { return s.cfg.MaxChunk }

// ReadStored returns the stored form of the chunk at loc, verified first
// like ReadChunk (record header, CRC, and the content against id). dst is
// used for the stored bytes if it is large enough.
func (s *Store) ReadStored(ctx context.Context, loc Location, id ID, dst []byte) (StoredChunk, error) {
	if err := s.enter(); err != nil {
		return StoredChunk{}, fmt.Errorf("chunkstore: read stored chunk: %w", err)
	}
	defer s.inflight.Done()
	if err := s.checkLoc(loc); err != nil {
		return StoredChunk{}, fmt.Errorf("chunkstore: read stored chunk %s: %w", id, err)
	}
	buf := s.getBuf()
	defer s.putBuf(buf)
	off := loc.Offset - recordHeaderLen
	rec, err := s.fetch(ctx, loc.Pack, off, recordHeaderLen+int64(loc.StoredLen), buf)
	if err != nil {
		return StoredChunk{}, fmt.Errorf("chunkstore: read stored chunk %s at %s+%d: %w", id, loc.Pack, loc.Offset, err)
	}
	raw := s.getBuf()
	defer s.putBuf(raw)
	if _, err := s.decodeRecord(rec, ChunkRead{ID: id, Loc: loc}, *raw); err != nil {
		return StoredChunk{}, fmt.Errorf("chunkstore: read stored chunk %s at %s+%d: %w", id, loc.Pack, loc.Offset, err)
	}
	return StoredChunk{ID: id, RawLen: loc.RawLen, Compressed: loc.Compressed,
		Stored: append(dst[:0], rec[recordHeaderLen:]...)}, nil
}

// VerifyStored checks a chunk received in stored form: its lengths within
// this store's limits, and its content (decompressed if need be) against
// its ID. Errors wrap ErrCorrupt.
func (s *Store) VerifyStored(c StoredChunk) error {
	var flags byte
	if c.Compressed {
		flags = flagCompressed
	}
	if uint64(len(c.Stored)) > uint64(^uint32(0)) {
		return fmt.Errorf("chunkstore: chunk %s: %w: %d stored bytes", c.ID, ErrCorrupt, len(c.Stored))
	}
	if err := checkLengths(flags, c.RawLen, uint32(len(c.Stored)), uint32(s.cfg.MaxChunk)); err != nil {
		return fmt.Errorf("chunkstore: chunk %s: %w", c.ID, err)
	}
	// decodeRecord checks the content against the ID; build the record
	// header it expects around the stored bytes.
	h := recordHeader{flags: flags, rawLen: c.RawLen, storedLen: uint32(len(c.Stored)), id: c.ID,
		dataCRC: crc32.Checksum(c.Stored, crcTable())}
	var hdr [recordHeaderLen]byte
	h.encode(&hdr)
	rec := make([]byte, 0, recordHeaderLen+len(c.Stored))
	rec = append(append(rec, hdr[:]...), c.Stored...)
	raw := s.getBuf()
	defer s.putBuf(raw)
	loc := Location{StoredLen: h.storedLen, RawLen: c.RawLen, Compressed: c.Compressed}
	if _, err := s.decodeRecord(rec, ChunkRead{ID: c.ID, Loc: loc}, *raw); err != nil {
		return fmt.Errorf("chunkstore: chunk %s: %w", c.ID, err)
	}
	return nil
}

// WriteStored verifies chunks received in stored form (VerifyStored) and
// appends them to packs as they are, without recompressing. It returns
// the chunks at their locations, durable like Write's, in the order given.
// At the first chunk that fails verification it stops: the chunks before
// it are written and returned (durable) with the error.
func (s *Store) WriteStored(ctx context.Context, chunks []StoredChunk) ([]Chunk, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("chunkstore: write stored: %w", err)
	}
	defer s.inflight.Done()
	out := make([]Chunk, 0, len(chunks))
	touched := map[*openPack]int64{}
	var verr error
	for _, c := range chunks {
		if err := ctx.Err(); err != nil {
			verr = fmt.Errorf("chunkstore: write stored: %w", err)
			break
		}
		if err := s.VerifyStored(c); err != nil {
			verr = err
			break
		}
		loc, p, full, err := s.appendRecord(c.ID, c.RawLen, c.Stored, c.Compressed, crc32.Checksum(c.Stored, crcTable()))
		if err != nil {
			verr = fmt.Errorf("chunkstore: write stored: %w", err)
			break
		}
		touched[p] = max(touched[p], loc.Offset+int64(loc.StoredLen))
		if full != nil {
			_ = s.seal(ctx, full) // as in Write: a failure surfaces in syncTo or is retried
		}
		out = append(out, Chunk{ID: c.ID, RawLen: c.RawLen, Loc: &loc})
	}
	for p, end := range touched {
		if err := p.syncTo(end); err != nil {
			return nil, fmt.Errorf("chunkstore: write stored: %w", err)
		}
	}
	return out, verr
}
