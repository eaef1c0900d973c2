package tarsplit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/vbatts/tar-split/tar/storage"
)

// Header stream encoding, version 1:
//
//	magic   "TSPL\x01"
//	record* each starting with one kind byte:
//	  'S' segment: uvarint n (1..maxSegment), then n raw tar bytes
//	  'F' entry:   uvarint payload size; if size > 0, 8 bytes crc64-ISO of
//	               the payload (big-endian, as tar-split's storage.CRCTable)
//	  'E' end:     uvarint tar bytes, uvarint content bytes, uvarint entries
//
// The end record comes last and exactly once: a header stream without it
// is truncated. Entries carry no name: Join serves content in order, so
// names (already in the header segments) would only cost bytes.
const (
	magic = "TSPL\x01"

	kindSegment = 'S'
	kindEntry   = 'F'
	kindEnd     = 'E'

	crcSize = 8

	// maxSegment caps one header segment, in Split and in Join. A real
	// entry's header bytes (previous padding, PAX record, GNU long name
	// and link, sparse map) stay well under it; each of those is capped at
	// 1 MiB by the parser.
	maxSegment = 8 << 20
)

// endRecord is the totals the end record carries.
type endRecord struct {
	tarBytes, contentBytes int64
	entries                int64
}

// encoder writes the header stream.
type encoder struct {
	w   *bufio.Writer
	n   int64 // bytes written, as counted by the underlying writer
	tmp [binary.MaxVarintLen64*3 + 1]byte
}

func newEncoder(w io.Writer) (*encoder, error) {
	e := &encoder{}
	e.w = bufio.NewWriterSize(writeCounter{w: w, n: &e.n}, 64<<10)
	if _, err := e.w.WriteString(magic); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *encoder) segment(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) > maxSegment {
		return fmt.Errorf("header segment of %d bytes exceeds %d", len(b), maxSegment)
	}
	buf := append(e.tmp[:0], kindSegment)
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	if _, err := e.w.Write(buf); err != nil {
		return err
	}
	_, err := e.w.Write(b)
	return err
}

func (e *encoder) entry(size int64, crc []byte) error {
	buf := append(e.tmp[:0], kindEntry)
	buf = binary.AppendUvarint(buf, uint64(size))
	if size > 0 {
		if len(crc) != crcSize {
			return fmt.Errorf("crc of %d bytes, want %d", len(crc), crcSize)
		}
		buf = append(buf, crc...)
	}
	_, err := e.w.Write(buf)
	return err
}

// end writes the end record and flushes.
func (e *encoder) end(r endRecord) error {
	buf := append(e.tmp[:0], kindEnd)
	buf = binary.AppendUvarint(buf, uint64(r.tarBytes))
	buf = binary.AppendUvarint(buf, uint64(r.contentBytes))
	buf = binary.AppendUvarint(buf, uint64(r.entries))
	if _, err := e.w.Write(buf); err != nil {
		return err
	}
	return e.w.Flush()
}

// writeCounter counts the bytes its writer accepted.
type writeCounter struct {
	w io.Writer
	n *int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// decoder reads the header stream's records as tar-split storage
// entries (a storage.Unpacker). The entry it returns, and its payload, are
// valid until the next call.
type decoder struct {
	r       *bufio.Reader
	started bool
	end     *endRecord
	entry   storage.Entry
	buf     []byte
	crc     [crcSize]byte

	// Totals of what the records so far announced.
	segBytes, contentBytes, entries int64
}

func newDecoder(r io.Reader) *decoder {
	return &decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next implements storage.Unpacker. It returns io.EOF only after a valid
// end record followed by the end of the header stream.
func (d *decoder) Next() (*storage.Entry, error) {
	if d.end != nil {
		return nil, io.EOF
	}
	if !d.started {
		var m [len(magic)]byte
		if _, err := io.ReadFull(d.r, m[:]); err != nil {
			return nil, fmt.Errorf("reading header stream magic: %w", noEOF(err))
		}
		if string(m[:]) != magic {
			return nil, fmt.Errorf("header stream has magic %q, want %q", m[:], magic)
		}
		d.started = true
	}
	kind, err := d.r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("header stream truncated, no end record: %w", noEOF(err))
	}
	switch kind {
	case kindSegment:
		return d.segment()
	case kindEntry:
		return d.fileEntry()
	case kindEnd:
		return nil, d.endRecord()
	default:
		return nil, fmt.Errorf("header stream: unknown record kind %#x", kind)
	}
}

func (d *decoder) segment() (*storage.Entry, error) {
	n, err := d.uvarint(maxSegment)
	if err != nil {
		return nil, fmt.Errorf("header stream: segment length: %w", err)
	}
	if n == 0 {
		return nil, errors.New("header stream: empty segment")
	}
	// Grow the buffer as bytes arrive, not to the claimed length at once:
	// a truncated or corrupt stream costs no more memory than it holds.
	d.buf = d.buf[:0]
	for int64(len(d.buf)) < n {
		have := len(d.buf)
		want := have + int(min(n-int64(have), 1<<20))
		d.buf = slices.Grow(d.buf, want-have)[:want]
		if _, err := io.ReadFull(d.r, d.buf[have:]); err != nil {
			return nil, fmt.Errorf("header stream: segment of %d bytes: %w", n, noEOF(err))
		}
	}
	d.segBytes += n
	d.entry = storage.Entry{Type: storage.SegmentType, Payload: d.buf}
	return &d.entry, nil
}

func (d *decoder) fileEntry() (*storage.Entry, error) {
	size, err := d.uvarint(math.MaxInt64)
	if err != nil {
		return nil, fmt.Errorf("header stream: entry size: %w", err)
	}
	d.entry = storage.Entry{Type: storage.FileType, Size: size}
	if size > 0 {
		if _, err := io.ReadFull(d.r, d.crc[:]); err != nil {
			return nil, fmt.Errorf("header stream: entry crc: %w", noEOF(err))
		}
		d.entry.Payload = d.crc[:]
	}
	if d.contentBytes > math.MaxInt64-size {
		return nil, errors.New("header stream: content size overflows")
	}
	d.contentBytes += size
	d.entries++
	return &d.entry, nil
}

// endRecord reads the end record, checks it against the records before it
// and that nothing follows it, and returns io.EOF when all is well.
func (d *decoder) endRecord() error {
	var vals [3]int64
	for i := range vals {
		v, err := d.uvarint(math.MaxInt64)
		if err != nil {
			return fmt.Errorf("header stream: end record: %w", err)
		}
		vals[i] = v
	}
	end := endRecord{tarBytes: vals[0], contentBytes: vals[1], entries: vals[2]}
	if end.contentBytes != d.contentBytes || end.entries != d.entries ||
		end.tarBytes != d.segBytes+d.contentBytes {
		return fmt.Errorf("header stream: end record says %d tar bytes, %d content bytes, %d entries; records add up to %d, %d, %d",
			end.tarBytes, end.contentBytes, end.entries, d.segBytes+d.contentBytes, d.contentBytes, d.entries)
	}
	if _, err := d.r.ReadByte(); err != io.EOF {
		if err == nil {
			return errors.New("header stream: data after end record")
		}
		return fmt.Errorf("header stream: after end record: %w", err)
	}
	d.end = &end
	return io.EOF
}

// uvarint reads a uvarint no larger than max.
func (d *decoder) uvarint(max int64) (int64, error) {
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		return 0, noEOF(err)
	}
	if v > uint64(max) {
		return 0, fmt.Errorf("value %d exceeds %d", v, max)
	}
	return int64(v), nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: inside the header stream,
// running out of bytes is always truncation.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
