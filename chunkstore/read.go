package chunkstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// ReadChunk returns the uncompressed bytes of the chunk at loc, verified
// against id; errors about bad data wrap ErrCorrupt. It reads from staging/
// while the pack is unsealed and from the Backend after, and is safe
// against a concurrent seal. dst is used for the result if it is large
// enough.
func (s *Store) ReadChunk(ctx context.Context, loc Location, id ID, dst []byte) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, fmt.Errorf("chunkstore: read chunk %s: %w", id, err)
	}
	defer s.inflight.Done()
	b, err := s.readChunk(ctx, loc, id, dst)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: read chunk %s at %s+%d: %w", id, loc.Pack, loc.Offset, err)
	}
	return b, nil
}

func (s *Store) readChunk(ctx context.Context, loc Location, id ID, dst []byte) ([]byte, error) {
	var flags byte
	if loc.Compressed {
		flags = flagCompressed
	}
	if err := checkLengths(flags, loc.RawLen, loc.StoredLen, uint32(s.cfg.MaxChunk)); err != nil {
		return nil, fmt.Errorf("invalid location: %w", err)
	}
	if !validName(loc.Pack) || loc.Offset < packHeaderLen+recordHeaderLen {
		return nil, fmt.Errorf("%w: invalid location", ErrCorrupt)
	}
	rc, err := s.openRange(ctx, loc.Pack, loc.Offset-recordHeaderLen, recordHeaderLen+int64(loc.StoredLen))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, err
	}
	defer rc.Close()

	var hdr [recordHeaderLen]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return nil, shortRead(err)
	}
	h, err := decodeRecordHeader(hdr[:], uint32(s.cfg.MaxChunk))
	if err != nil {
		return nil, err
	}
	if h.id != id || h.rawLen != loc.RawLen || h.storedLen != loc.StoredLen || h.compressed() != loc.Compressed {
		return nil, fmt.Errorf("%w: record header (id %s, raw %d, stored %d, compressed %t) does not match",
			ErrCorrupt, h.id, h.rawLen, h.storedLen, h.compressed())
	}

	raw := int(loc.RawLen)
	if cap(dst) < raw {
		dst = make([]byte, raw)
	}
	var out []byte
	if !loc.Compressed {
		out = dst[:raw]
		if _, err := io.ReadFull(rc, out); err != nil {
			return nil, shortRead(err)
		}
		if crc32.Checksum(out, crcTable()) != h.dataCRC {
			return nil, fmt.Errorf("%w: stored bytes crc mismatch", ErrCorrupt)
		}
	} else {
		buf := s.getBuf()
		defer s.putBuf(buf)
		if cap(*buf) < int(loc.StoredLen) {
			*buf = make([]byte, 0, loc.StoredLen)
		}
		stored := (*buf)[:loc.StoredLen]
		if _, err := io.ReadFull(rc, stored); err != nil {
			return nil, shortRead(err)
		}
		if crc32.Checksum(stored, crcTable()) != h.dataCRC {
			return nil, fmt.Errorf("%w: stored bytes crc mismatch", ErrCorrupt)
		}
		// The 3-index slice caps decoding at the recorded raw length.
		out, err = s.dec.DecodeAll(stored, dst[:0:raw])
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		}
		if len(out) != raw {
			return nil, fmt.Errorf("%w: decompressed %d bytes, want %d", ErrCorrupt, len(out), raw)
		}
	}
	if sha256.Sum256(out) != id {
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
