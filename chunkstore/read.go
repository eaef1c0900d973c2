package chunkstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// ChunkRead names one chunk to read: its ID and where the index says it is.
type ChunkRead struct {
	ID  ID
	Loc Location
	// SkipHash leaves out the check of the content's sha256 against ID,
	// for a caller that checks a digest over all the bytes it reads (a
	// whole blob pull checks the blob's). The record is still checked:
	// its header's CRC, ID and lengths against Loc, and the stored bytes'
	// CRC-32C, which catches bit rot at rest and in transit.
	SkipHash bool
}

// maxCoalesceGap is the most unwanted bytes a coalesced read may span
// between two wanted records: reading them costs less than another request.
const maxCoalesceGap = 256 << 10

// ReadChunk returns the uncompressed bytes of the chunk at loc, verified
// against id; errors about bad data wrap ErrCorrupt. It reads from staging/
// while the pack is unsealed and from the Backend after, and is safe
// against a concurrent seal. dst is used for the result if it is large
// enough.
func (s *Store) ReadChunk(ctx context.Context, loc Location, id ID, dst []byte) ([]byte, error) {
	out, err := s.ReadChunks(ctx, []ChunkRead{{ID: id, Loc: loc}}, [][]byte{dst})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ReadChunks reads several chunks, verified like ReadChunk, and returns
// their bytes in order; out[i] uses dsts[i] (if given) when large enough.
// Neighbouring records of one sealed pack are fetched with one backend
// range read (up to MaxChunk bytes, skipping at most maxCoalesceGap bytes
// between records), and the read cache, if the store has one, is consulted
// first: one pull of a blob does not cost a request per chunk.
func (s *Store) ReadChunks(ctx context.Context, reqs []ChunkRead, dsts [][]byte) ([][]byte, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("chunkstore: read chunks: %w", err)
	}
	defer s.inflight.Done()
	out := make([][]byte, len(reqs))
	dst := func(i int) []byte {
		if i < len(dsts) {
			return dsts[i]
		}
		return nil
	}
	for _, r := range reqs {
		if err := s.checkLoc(r.Loc); err != nil {
			return nil, fmt.Errorf("chunkstore: read chunk %s at %s+%d: %w", r.ID, r.Loc.Pack, r.Loc.Offset, err)
		}
	}
	// Cache hits first.
	var misses []int
	for i, r := range reqs {
		if rec, ok := s.cache.Get(cacheKey(r.Loc)); ok {
			b, err := s.decodeRecord(rec, r, dst(i))
			if err == nil {
				out[i] = b
				continue
			}
			s.log.Warn("dropping a bad read cache entry", "pack", r.Loc.Pack, "offset", r.Loc.Offset, "err", err)
			s.cache.Drop(cacheKey(r.Loc))
		}
		misses = append(misses, i)
	}
	buf := s.getBuf()
	defer s.putBuf(buf)
	for len(misses) > 0 {
		n := s.coalesce(reqs, misses)
		first, last := reqs[misses[0]].Loc, reqs[misses[n-1]].Loc
		off := first.Offset - recordHeaderLen
		span, err := s.fetch(ctx, first.Pack, off, last.Offset+int64(last.StoredLen)-off, buf)
		if err != nil {
			return nil, fmt.Errorf("chunkstore: read chunk %s at %s+%d: %w", reqs[misses[0]].ID, first.Pack, first.Offset, err)
		}
		for _, i := range misses[:n] {
			r := reqs[i]
			rec := span[r.Loc.Offset-recordHeaderLen-off : r.Loc.Offset+int64(r.Loc.StoredLen)-off]
			b, err := s.decodeRecord(rec, r, dst(i))
			if err != nil {
				return nil, fmt.Errorf("chunkstore: read chunk %s at %s+%d: %w", r.ID, r.Loc.Pack, r.Loc.Offset, err)
			}
			s.cache.Put(cacheKey(r.Loc), rec)
			out[i] = b
		}
		misses = misses[n:]
	}
	return out, nil
}

// coalesce returns how many of the leading misses one range read covers:
// records of the same pack, in increasing order, with small gaps, spanning
// at most MaxChunk bytes.
func (s *Store) coalesce(reqs []ChunkRead, misses []int) int {
	first := reqs[misses[0]].Loc
	start := first.Offset - recordHeaderLen
	end := first.Offset + int64(first.StoredLen)
	n := 1
	for ; n < len(misses); n++ {
		l := reqs[misses[n]].Loc
		recStart := l.Offset - recordHeaderLen
		recEnd := l.Offset + int64(l.StoredLen)
		if l.Pack != first.Pack || recStart < end || recStart-end > maxCoalesceGap || recEnd-start > int64(s.cfg.MaxChunk) {
			break
		}
		end = recEnd
	}
	return n
}

// checkLoc rejects a location that cannot be valid in this store.
func (s *Store) checkLoc(loc Location) error {
	var flags byte
	if loc.Compressed {
		flags = flagCompressed
	}
	if err := checkLengths(flags, loc.RawLen, loc.StoredLen, uint32(s.cfg.MaxChunk)); err != nil {
		return fmt.Errorf("invalid location: %w", err)
	}
	if !ValidName(loc.Pack) || loc.Offset < packHeaderLen+recordHeaderLen {
		return fmt.Errorf("%w: invalid location", ErrCorrupt)
	}
	return nil
}

// fetch reads n bytes at off of a pack into buf (grown if needed).
func (s *Store) fetch(ctx context.Context, pack string, off, n int64, buf *[]byte) ([]byte, error) {
	rc, err := s.openRange(ctx, pack, off, n)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, err
	}
	defer rc.Close()
	if int64(cap(*buf)) < n {
		*buf = make([]byte, 0, n)
	}
	b := (*buf)[:n]
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, shortRead(err)
	}
	return b, nil
}

// decodeRecord checks a whole record (header and stored bytes) against
// the read's location and id, and returns the chunk's bytes, in dst if it
// is large enough.
func (s *Store) decodeRecord(rec []byte, r ChunkRead, dst []byte) ([]byte, error) {
	loc, id := r.Loc, r.ID
	if len(rec) != recordHeaderLen+int(loc.StoredLen) {
		return nil, fmt.Errorf("%w: record of %d bytes, location says %d", ErrCorrupt, len(rec), recordHeaderLen+int(loc.StoredLen))
	}
	h, err := decodeRecordHeader(rec[:recordHeaderLen], uint32(s.cfg.MaxChunk))
	if err != nil {
		return nil, err
	}
	if h.id != id || h.rawLen != loc.RawLen || h.storedLen != loc.StoredLen || h.compressed() != loc.Compressed {
		return nil, fmt.Errorf("%w: record header (id %s, raw %d, stored %d, compressed %t) does not match",
			ErrCorrupt, h.id, h.rawLen, h.storedLen, h.compressed())
	}
	stored := rec[recordHeaderLen:]
	if crc32.Checksum(stored, crcTable()) != h.dataCRC {
		return nil, fmt.Errorf("%w: stored bytes crc mismatch", ErrCorrupt)
	}
	raw := int(loc.RawLen)
	if cap(dst) < raw {
		dst = make([]byte, raw)
	}
	var out []byte
	if !loc.Compressed {
		out = append(dst[:0], stored...)
	} else {
		// The 3-index slice caps decoding at the recorded raw length.
		out, err = s.dec.DecodeAll(stored, dst[:0:raw])
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		}
		if len(out) != raw {
			return nil, fmt.Errorf("%w: decompressed %d bytes, want %d", ErrCorrupt, len(out), raw)
		}
	}
	if !r.SkipHash && sha256.Sum256(out) != id {
		return nil, fmt.Errorf("%w: content does not match chunk id", ErrCorrupt)
	}
	return out, nil
}

func shortRead(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: short read", ErrCorrupt)
	}
	return err
}

// openRange opens a byte range of a pack: from its staging file while the
// pack is there, else from the backend.
func (s *Store) openRange(ctx context.Context, pack string, off, n int64) (io.ReadCloser, error) {
	s.packsMu.RLock()
	p := s.open[pack]
	if p != nil {
		// Taken before packsMu is released: forget removes p from the map
		// under packsMu before it waits for readers and closes the file.
		p.rw.RLock()
	}
	s.packsMu.RUnlock()
	if p == nil {
		return s.backend.ReadRange(ctx, pack, off, n)
	}
	if p.closed {
		p.rw.RUnlock()
		return nil, fmt.Errorf("pack %s: %w", pack, ErrClosed)
	}
	if size := p.size.Load(); off+n > size {
		p.rw.RUnlock()
		return nil, fmt.Errorf("%w: range [%d, +%d) past the %d bytes of open pack %s", ErrCorrupt, off, n, size, pack)
	}
	return &stagingReader{SectionReader: io.NewSectionReader(p.f, off, n), p: p}, nil
}

type stagingReader struct {
	*io.SectionReader
	p    *openPack
	once bool
}

func (r *stagingReader) Close() error {
	if !r.once {
		r.once = true
		r.p.rw.RUnlock()
	}
	return nil
}

// cacheKey names a pack record in the read cache.
func cacheKey(loc Location) string { return loc.Pack + "-" + strconv.FormatInt(loc.Offset, 10) }
