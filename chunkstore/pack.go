package chunkstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Pack format constants; see the package comment for the byte layout.
const (
	packHeaderLen   = 8
	packVersion     = 1
	recordHeaderLen = 56
	entryLen        = 52
	footerLen       = 16

	flagCompressed = 1 << 0
	knownFlags     = flagCompressed
)

var (
	packMagic   = [4]byte{'C', 'Y', 'P', 'K'}
	recordMagic = [4]byte{'C', 'Y', 'R', 'C'}
	footerMagic = [8]byte{'C', 'Y', 'P', 'K', 'T', 'R', 'L', 1}
)

// crcTable returns the CRC-32C table. crc32.MakeTable caches Castagnoli, so
// this is cheap and needs no package variable.
func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

func packHeader() []byte {
	h := make([]byte, packHeaderLen)
	copy(h, packMagic[:])
	h[4] = packVersion
	return h
}

func checkPackHeader(h []byte) error {
	if len(h) < packHeaderLen || !bytes.Equal(h[:4], packMagic[:]) {
		return fmt.Errorf("%w: bad pack magic", ErrCorrupt)
	}
	if h[4] != packVersion {
		return fmt.Errorf("%w: unknown pack version %d", ErrCorrupt, h[4])
	}
	if h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return fmt.Errorf("%w: nonzero reserved pack header bytes", ErrCorrupt)
	}
	return nil
}

// recordHeader is the decoded form of a record header.
type recordHeader struct {
	flags     byte
	rawLen    uint32
	storedLen uint32
	id        ID
	dataCRC   uint32
}

func (h recordHeader) compressed() bool { return h.flags&flagCompressed != 0 }

func (h recordHeader) encode(b *[recordHeaderLen]byte) {
	copy(b[0:4], recordMagic[:])
	b[4] = h.flags
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint32(b[8:], h.rawLen)
	binary.LittleEndian.PutUint32(b[12:], h.storedLen)
	copy(b[16:48], h.id[:])
	binary.LittleEndian.PutUint32(b[48:], h.dataCRC)
	binary.LittleEndian.PutUint32(b[52:], crc32.Checksum(b[:52], crcTable()))
}

// decodeRecordHeader parses and checks a record header: magic, reserved
// bytes, flags, header CRC, and length bounds (0 < storedLen <= rawLen <=
// maxRaw, storedLen == rawLen when not compressed).
func decodeRecordHeader(b []byte, maxRaw uint32) (recordHeader, error) {
	if len(b) < recordHeaderLen {
		return recordHeader{}, fmt.Errorf("%w: short record header", ErrCorrupt)
	}
	if !bytes.Equal(b[0:4], recordMagic[:]) {
		return recordHeader{}, fmt.Errorf("%w: bad record magic", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:52], crcTable()), binary.LittleEndian.Uint32(b[52:]); got != want {
		return recordHeader{}, fmt.Errorf("%w: record header crc %08x, want %08x", ErrCorrupt, got, want)
	}
	h := recordHeader{
		flags:     b[4],
		rawLen:    binary.LittleEndian.Uint32(b[8:]),
		storedLen: binary.LittleEndian.Uint32(b[12:]),
		dataCRC:   binary.LittleEndian.Uint32(b[48:]),
	}
	copy(h.id[:], b[16:48])
	if b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return recordHeader{}, fmt.Errorf("%w: nonzero reserved record header bytes", ErrCorrupt)
	}
	if err := checkLengths(h.flags, h.rawLen, h.storedLen, maxRaw); err != nil {
		return recordHeader{}, err
	}
	return h, nil
}

// checkLengths checks the invariants shared by record headers, trailer
// entries and Locations.
func checkLengths(flags byte, rawLen, storedLen, maxRaw uint32) error {
	switch {
	case flags&^knownFlags != 0:
		return fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	case storedLen == 0 || rawLen == 0:
		return fmt.Errorf("%w: empty chunk (raw %d, stored %d)", ErrCorrupt, rawLen, storedLen)
	case rawLen > maxRaw:
		return fmt.Errorf("%w: chunk of %d bytes exceeds limit %d", ErrCorrupt, rawLen, maxRaw)
	case storedLen > rawLen:
		return fmt.Errorf("%w: stored length %d exceeds raw length %d", ErrCorrupt, storedLen, rawLen)
	case flags&flagCompressed == 0 && storedLen != rawLen:
		return fmt.Errorf("%w: uncompressed chunk with stored length %d != raw length %d", ErrCorrupt, storedLen, rawLen)
	}
	return nil
}

// encodeTrailer returns the trailer (entries and footer) for entries, which
// must be in pack order.
func encodeTrailer(entries []PackEntry) []byte {
	b := make([]byte, len(entries)*entryLen+footerLen)
	for i, e := range entries {
		p := b[i*entryLen:]
		copy(p[0:32], e.ID[:])
		binary.LittleEndian.PutUint64(p[32:], uint64(e.Loc.Offset))
		binary.LittleEndian.PutUint32(p[40:], e.Loc.RawLen)
		binary.LittleEndian.PutUint32(p[44:], e.Loc.StoredLen)
		if e.Loc.Compressed {
			p[48] = flagCompressed
		}
	}
	n := len(entries) * entryLen
	f := b[n:]
	binary.LittleEndian.PutUint32(f[0:], uint32(n))
	binary.LittleEndian.PutUint32(f[4:], crc32.Checksum(b[:n], crcTable()))
	copy(f[8:], footerMagic[:])
	return b
}

// parseFooter checks the footer of a pack of packSize bytes and returns
// where its entries start, their length and their CRC.
func parseFooter(footer []byte, packSize int64) (entriesOff, entriesLen int64, crc uint32, err error) {
	if len(footer) != footerLen {
		return 0, 0, 0, fmt.Errorf("%w: footer of %d bytes", ErrCorrupt, len(footer))
	}
	if packSize < packHeaderLen+footerLen {
		return 0, 0, 0, fmt.Errorf("%w: pack of %d bytes is too short for a trailer", ErrCorrupt, packSize)
	}
	if !bytes.Equal(footer[8:], footerMagic[:]) {
		return 0, 0, 0, fmt.Errorf("%w: bad trailer magic", ErrCorrupt)
	}
	entriesLen = int64(binary.LittleEndian.Uint32(footer[0:]))
	crc = binary.LittleEndian.Uint32(footer[4:])
	if entriesLen%entryLen != 0 {
		return 0, 0, 0, fmt.Errorf("%w: trailer entries length %d is not a multiple of %d", ErrCorrupt, entriesLen, entryLen)
	}
	if entriesLen > packSize-packHeaderLen-footerLen {
		return 0, 0, 0, fmt.Errorf("%w: trailer entries length %d exceeds pack size %d", ErrCorrupt, entriesLen, packSize)
	}
	return packSize - footerLen - entriesLen, entriesLen, crc, nil
}

// parseEntries decodes trailer entries that start at entriesOff of pack and
// checks them: CRC, flags, lengths (rawLen <= maxRaw), and that the records
// they describe tile the pack from its header to entriesOff.
func parseEntries(b []byte, crc uint32, entriesOff int64, pack string, maxRaw uint32) ([]PackEntry, error) {
	if len(b)%entryLen != 0 {
		return nil, fmt.Errorf("%w: trailer entries length %d is not a multiple of %d", ErrCorrupt, len(b), entryLen)
	}
	if got := crc32.Checksum(b, crcTable()); got != crc {
		return nil, fmt.Errorf("%w: trailer crc %08x, want %08x", ErrCorrupt, got, crc)
	}
	entries := make([]PackEntry, 0, len(b)/entryLen)
	next := int64(packHeaderLen) // where the next record header must start
	for i := 0; i < len(b); i += entryLen {
		p := b[i : i+entryLen]
		var e PackEntry
		copy(e.ID[:], p[0:32])
		off := binary.LittleEndian.Uint64(p[32:])
		rawLen := binary.LittleEndian.Uint32(p[40:])
		storedLen := binary.LittleEndian.Uint32(p[44:])
		flags := p[48]
		if p[49] != 0 || p[50] != 0 || p[51] != 0 {
			return nil, fmt.Errorf("%w: trailer entry %d: nonzero reserved bytes", ErrCorrupt, i/entryLen)
		}
		if err := checkLengths(flags, rawLen, storedLen, maxRaw); err != nil {
			return nil, fmt.Errorf("trailer entry %d: %w", i/entryLen, err)
		}
		if off != uint64(next+recordHeaderLen) {
			return nil, fmt.Errorf("%w: trailer entry %d: offset %d, want %d", ErrCorrupt, i/entryLen, off, next+recordHeaderLen)
		}
		next += recordHeaderLen + int64(storedLen)
		if next > entriesOff {
			return nil, fmt.Errorf("%w: trailer entry %d: record ends at %d, past the trailer at %d", ErrCorrupt, i/entryLen, next, entriesOff)
		}
		e.Loc = Location{Pack: pack, Offset: int64(off), StoredLen: storedLen, RawLen: rawLen, Compressed: flags&flagCompressed != 0}
		entries = append(entries, e)
	}
	if next != entriesOff {
		return nil, fmt.Errorf("%w: records end at %d, trailer starts at %d", ErrCorrupt, next, entriesOff)
	}
	return entries, nil
}

// parseTrailer parses the trailer of a whole sealed pack held in memory.
func parseTrailer(pack []byte, name string, maxRaw uint32) ([]PackEntry, error) {
	if err := checkPackHeader(pack); err != nil {
		return nil, err
	}
	size := int64(len(pack))
	if size < footerLen {
		return nil, fmt.Errorf("%w: pack of %d bytes is too short for a trailer", ErrCorrupt, size)
	}
	off, n, crc, err := parseFooter(pack[size-footerLen:], size)
	if err != nil {
		return nil, err
	}
	return parseEntries(pack[off:off+n], crc, off, name, maxRaw)
}

// scanRecords reads the records of an unsealed pack of size bytes from r,
// stopping at the first incomplete or damaged one. It returns the entries
// of the good records and the offset where they end. Only I/O errors other
// than a short read are returned as errors.
func scanRecords(r io.ReaderAt, size int64, pack string, maxRaw uint32) ([]PackEntry, int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), int(max(16, min(size, 1<<20))))
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(br, hdr[:packHeaderLen]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, nil
		}
		return nil, 0, err
	}
	if checkPackHeader(hdr) != nil {
		return nil, 0, nil
	}
	var entries []PackEntry
	end := int64(packHeaderLen)
	crc := crc32.New(crcTable())
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, end, nil
			}
			return nil, 0, err
		}
		h, err := decodeRecordHeader(hdr, maxRaw)
		if err != nil {
			return entries, end, nil
		}
		crc.Reset()
		if _, err := io.CopyN(crc, br, int64(h.storedLen)); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, end, nil
			}
			return nil, 0, err
		}
		if crc.Sum32() != h.dataCRC {
			return entries, end, nil
		}
		entries = append(entries, PackEntry{ID: h.id, Loc: Location{
			Pack:       pack,
			Offset:     end + recordHeaderLen,
			StoredLen:  h.storedLen,
			RawLen:     h.rawLen,
			Compressed: h.compressed(),
		}})
		end += recordHeaderLen + int64(h.storedLen)
	}
}
