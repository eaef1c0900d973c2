package tarsplit

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/vbatts/tar-split/tar/storage"
)

// Entry is one archive entry as listed from a header stream.
type Entry struct {
	// Header is the entry's header as archive/tar parses it (PAX and GNU
	// extensions applied).
	Header *tar.Header
	// Offset is where the entry's payload starts in the content stream,
	// and Size how many content-stream bytes it takes. Payloads are
	// consecutive: an entry's Offset is the sum of the Sizes before it.
	// For a regular file Size is Header.Size; for a GNU sparse file it is
	// the archived data fragments, not the expanded file.
	Offset, Size int64
}

// Totals are the end record's counts, checked against the records.
type Totals struct {
	TarBytes     int64 // the tar stream the header stream describes
	ContentBytes int64 // the content stream
	Entries      int64
}

// Entries reads a header stream and calls fn for each archive entry in
// order, without the content stream: the header segments are parsed as a
// tar whose payloads are skipped, never read. It reads the header stream
// to its end record and returns the totals; an error from fn stops it and
// is returned as it is. Memory is bounded by one header segment
// (maxSegment).
func Entries(headers io.Reader, fn func(Entry) error) (Totals, error) {
	v := &virtualTar{dec: newDecoder(headers)}
	tr := tar.NewReader(v)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if v.err != nil {
				return Totals{}, fmt.Errorf("tarsplit: listing entries: %w", v.err)
			}
			return Totals{}, fmt.Errorf("tarsplit: listing entries: parsing header at tar byte %d: %w", v.pos, err)
		}
		// The parser stopped at the end of the entry's header segment: the
		// next record must be the entry's payload.
		off, size, err := v.entryAhead()
		if err != nil {
			return Totals{}, fmt.Errorf("tarsplit: listing entries: %s: %w", h.Name, err)
		}
		if err := fn(Entry{Header: h, Offset: off, Size: size}); err != nil {
			return Totals{}, err
		}
	}
	// Drain the trailing segments to the end record, which checks the
	// totals of the whole stream.
	for {
		if err := v.load(); err == io.EOF {
			break
		} else if err != nil {
			return Totals{}, fmt.Errorf("tarsplit: listing entries: %w", err)
		}
		v.item, v.zeros = nil, 0
	}
	end := v.dec.end
	return Totals{TarBytes: end.tarBytes, ContentBytes: end.contentBytes, Entries: end.entries}, nil
}

// virtualTar presents a header stream as the original tar with every
// payload replaced by zeros that are never materialised: a Seek over a
// payload costs nothing, and archive/tar skips payloads by seeking.
type virtualTar struct {
	dec *decoder
	pos int64 // virtual tar bytes consumed

	buf     []byte // the current segment's bytes
	item    []byte // the rest of them
	zeros   int64  // rest of the current payload
	pending bool   // an entry record was peeked and not yet entered
	next    int64  // its size
	content int64  // content bytes of the entry records entered so far
	err     error  // header stream error, sticky
}

var errParserDisagrees = errors.New("header stream and tar parser disagree on entry boundaries")

// load makes the next record current when the current one is used up.
// It returns io.EOF after the end record.
func (v *virtualTar) load() error {
	if v.err != nil {
		return v.err
	}
	for len(v.item) == 0 && v.zeros == 0 {
		if v.pending {
			v.pending = false
			v.enter(v.next)
			continue
		}
		e, err := v.dec.Next()
		if err != nil {
			if err != io.EOF {
				v.err = err
			}
			return err
		}
		if e.Type == storage.SegmentType {
			v.buf = append(v.buf[:0], e.Payload...)
			v.item = v.buf
		} else {
			v.enter(e.Size)
		}
	}
	return nil
}

// enter makes an entry record's payload the current item.
func (v *virtualTar) enter(size int64) {
	v.zeros = size
	v.content += size
}

// entryAhead returns the content offset and size of the entry record that
// must follow the segment the parser just finished, and arranges for its
// payload to be served next.
func (v *virtualTar) entryAhead() (off, size int64, err error) {
	if v.err != nil {
		return 0, 0, v.err
	}
	if len(v.item) > 0 || v.zeros > 0 || v.pending {
		return 0, 0, errParserDisagrees
	}
	e, err := v.dec.Next()
	if err == io.EOF {
		return 0, 0, fmt.Errorf("%w: no entry record before the end", errParserDisagrees)
	}
	if err != nil {
		v.err = err
		return 0, 0, err
	}
	if e.Type != storage.FileType {
		return 0, 0, errParserDisagrees
	}
	v.pending, v.next = true, e.Size
	return v.content, e.Size, nil
}

func (v *virtualTar) Read(p []byte) (int, error) {
	if err := v.load(); err != nil {
		return 0, err
	}
	var n int
	if len(v.item) > 0 {
		n = copy(p, v.item)
		v.item = v.item[n:]
	} else {
		n = int(min(int64(len(p)), v.zeros))
		clear(p[:n])
		v.zeros -= int64(n)
	}
	v.pos += int64(n)
	return n, nil
}

// Seek supports only io.SeekCurrent forward, which is all archive/tar
// uses to skip payloads.
func (v *virtualTar) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return v.pos, errors.New("tarsplit: virtual tar seeks forward only")
	}
	for off > 0 {
		if err := v.load(); err != nil {
			if err == io.EOF {
				break // a later read reports the truncation
			}
			return v.pos, err
		}
		var n int64
		if len(v.item) > 0 {
			n = min(off, int64(len(v.item)))
			v.item = v.item[n:]
		} else {
			n = min(off, v.zeros)
			v.zeros -= n
		}
		v.pos += n
		off -= n
	}
	return v.pos, nil
}
