package tarsplit

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/archive/tar"
)

// maxSparseHoles caps, per stream, the zero bytes sparse files' holes
// expand to while the parser walks them (the holes are not stored, but the
// parser only offers the expanded file). A tiny tar may claim an exabyte
// hole; past this cap (about 0.2 s of zeroing here) the stream is refused
// like a tar that is not valid.
const maxSparseHoles = 16 << 30

// Stats describes a split.
type Stats struct {
	TarBytes     int64 // length of the tar stream read
	HeaderBytes  int64 // length of the header stream written
	ContentBytes int64 // length of the content stream written
	// Files counts archive entries: headers of any type (files,
	// directories, links, PAX global headers), not counting the PAX and
	// GNU extension headers that describe the next entry.
	Files int
	// TarDigest is the sha256 of the tar stream read: the layer's DiffID.
	TarDigest digest.Digest
}

// FormatError reports that Split's input is not a tar stream it can split
// (not a tar, truncated, or past one of its limits). Callers store such a
// stream as plain bytes instead.
type FormatError struct {
	Offset int64 // input bytes consumed when the problem was found
	Err    error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("tarsplit: not a splittable tar (at byte %d): %v", e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Split reads a tar stream from r to its end and writes its header stream
// to headers and the concatenated file payloads, in archive order and
// without padding, to content.
//
// An input that is not a tar stream, is truncated inside an entry, or
// exceeds a limit (see the package doc) gives a *FormatError; errors
// reading r or writing headers or content are returned wrapped as they
// are. On any error the streams written so far are incomplete: discard
// them. An empty input, or one that ends where a header would start, is
// accepted: it round-trips like any other.
//
// Every input byte goes to exactly one of the two streams, in order, so
// Join of them is r's bytes by construction; Verify checks it on the
// stored streams before the caller commits to them.
func Split(r io.Reader, headers, content io.Writer) (Stats, error) {
	return split(r, headers, content)
}

// split is Split with options for tests.
func split(r io.Reader, headers, content io.Writer, opts ...func(*splitter)) (Stats, error) {
	var st Stats
	enc, err := newEncoder(headers)
	if err != nil {
		return st, fmt.Errorf("tarsplit: writing header stream: %w", err)
	}
	cw := bufio.NewWriterSize(writeCounter{w: content, n: &st.ContentBytes}, 64<<10)
	sum := sha256.New()
	s := &splitter{tap: newTap(r, sum, cw), enc: enc, maxHoles: maxSparseHoles}
	for _, o := range opts {
		o(s)
	}
	err = s.run()
	if err == nil {
		err = s.finish(cw)
	}
	st.TarBytes = s.tap.n
	st.HeaderBytes = enc.n
	st.Files = int(s.entries)
	st.TarDigest = digest.NewDigestFromBytes(digest.SHA256, sum.Sum(nil))
	return st, err
}

// splitter walks one tar stream.
type splitter struct {
	tap *tap
	enc *encoder

	segBytes, contentBytes, entries int64
	holes, maxHoles                 int64
	crc                             [crcSize]byte
}

func (s *splitter) run() error {
	t := s.tap
	tr := tar.NewReader(t)
	buf := make([]byte, 256<<10)
	for {
		t.startSegment()
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.fail("reading entry header", err)
		}
		if err := s.segment(); err != nil {
			return err
		}
		if err := s.payload(tr, buf); err != nil {
			return err
		}
	}
	// The end-of-archive blocks the parser read (if any), then anything
	// after them, as segments of at most 1 MiB.
	for {
		if len(t.seg) >= 1<<20 {
			if err := s.segment(); err != nil {
				return err
			}
			t.startSegment()
		}
		_, err := t.Read(buf)
		if err == io.EOF {
			return s.segment()
		}
		if err != nil {
			return s.fail("reading after the end of the archive", err)
		}
	}
}

// payload drains the current entry's payload, which the tap sends to the
// content stream, and records the entry.
func (s *splitter) payload(tr *tar.Reader, buf []byte) error {
	t := s.tap
	t.startPayload()
	var logical int64
	for {
		n, err := tr.Read(buf)
		logical += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.fail("reading entry payload", err)
		}
		if s.holes+logical-t.paid > s.maxHoles {
			return &FormatError{Offset: t.n, Err: fmt.Errorf("sparse holes exceed %d bytes", s.maxHoles)}
		}
	}
	s.holes += logical - t.paid
	s.contentBytes += t.paid
	s.entries++
	if err := s.enc.entry(t.paid, t.crc.Sum(s.crc[:0])); err != nil {
		return fmt.Errorf("tarsplit: writing header stream: %w", err)
	}
	return nil
}

// segment writes the tap's current segment to the header stream.
func (s *splitter) segment() error {
	s.segBytes += int64(len(s.tap.seg))
	if err := s.enc.segment(s.tap.seg); err != nil {
		return fmt.Errorf("tarsplit: writing header stream: %w", err)
	}
	return nil
}

// finish flushes content and ends the header stream.
func (s *splitter) finish(content *bufio.Writer) error {
	if err := content.Flush(); err != nil {
		return fmt.Errorf("tarsplit: writing content stream: %w", err)
	}
	if s.segBytes+s.contentBytes != s.tap.n {
		return fmt.Errorf("tarsplit: internal error: %d header and %d content bytes for %d tar bytes",
			s.segBytes, s.contentBytes, s.tap.n)
	}
	end := endRecord{tarBytes: s.tap.n, contentBytes: s.contentBytes, entries: s.entries}
	if err := s.enc.end(end); err != nil {
		return fmt.Errorf("tarsplit: writing header stream: %w", err)
	}
	return nil
}

// fail classifies an error from the parser: the source's or the content
// writer's own error, or a problem with the tar itself.
func (s *splitter) fail(what string, err error) error {
	switch {
	case s.tap.sinkErr != nil:
		return fmt.Errorf("tarsplit: writing content stream: %w", s.tap.sinkErr)
	case s.tap.srcErr != nil:
		return fmt.Errorf("tarsplit: reading tar stream: %w", s.tap.srcErr)
	case errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
	return &FormatError{Offset: s.tap.n, Err: fmt.Errorf("%s: %w", what, err)}
}
