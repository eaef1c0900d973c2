package tarsplit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc64"
	"io"

	"github.com/vbatts/tar-split/tar/storage"
)

// Join returns the original tar stream from a header stream and a content
// stream, both positioned at their starts. It streams in bounded memory
// (one header segment, at most 8 MiB, and small buffers) and never reads
// content past what the header stream accounts for, except for a final
// one-byte read that checks the content stream ends there.
//
// Errors come from Read: a header stream that is corrupt or truncated, a
// content stream that is too short or too long for it, or a payload whose
// crc64 differs from the one Split recorded. A reader that has returned
// io.EOF has returned the whole tar and found both streams consistent.
//
// Join runs the zipper in a goroutine. Close the reader when done, even
// after an error or before the end: Close makes the goroutine stop at its
// next write; it does not close headers or content, and a goroutine
// blocked reading one of them stays blocked until that read returns.
func Join(headers, content io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		_, err := JoinTo(bw, headers, content)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// JoinTo writes the tar stream that headers and content were split from to
// w, without a goroutine, and returns the bytes written. It checks what
// Join checks.
func JoinTo(w io.Writer, headers, content io.Reader) (int64, error) {
	return join(w, headers, 0, fixedContent(content), true)
}

// JoinToUnchecked is JoinTo without the payloads' crc64 checks, for a
// caller that checks a digest over all it writes anyway (a whole layer
// pull checks the layer's). Everything else is checked as by JoinTo: the
// header stream's records and totals and the content stream's length.
func JoinToUnchecked(w io.Writer, headers, content io.Reader) (int64, error) {
	return join(w, headers, 0, fixedContent(content), false)
}

// fixedContent opens content, positioned at its start, at offset 0.
func fixedContent(content io.Reader) func(int64) (io.Reader, error) {
	return func(off int64) (io.Reader, error) {
		if off != 0 {
			return nil, fmt.Errorf("content opened at %d", off)
		}
		return content, nil
	}
}

// JoinFrom writes the tar stream from tar offset from to its end to w:
// what JoinTo writes, less its first from bytes, and returns the bytes
// written. It reads the header stream from its start (its records say
// where every tar byte lies, and it is small next to the content) and
// opens the content stream with openContent at the content offset the
// tar from `from` on starts with, so that no content before it is read.
// The payload that from falls inside is not checked against its crc64
// (its start is not read); every later one is, as by JoinTo, and so are
// the header stream's totals and the content stream's end.
func JoinFrom(w io.Writer, headers io.Reader, from int64, openContent func(off int64) (io.Reader, error)) (int64, error) {
	return join(w, headers, from, openContent, true)
}

// join is JoinFrom, checking the payloads' crc64s if checkCRC.
func join(w io.Writer, headers io.Reader, from int64, openContent func(off int64) (io.Reader, error), checkCRC bool) (int64, error) {
	if from < 0 {
		return 0, fmt.Errorf("tarsplit: join from %d", from)
	}
	dec := newDecoder(headers)
	var tarPos, contentPos, written int64
	var content io.Reader
	crc := crc64.New(storage.CRCTable)
	var sum [crcSize]byte
	buf := make([]byte, 64<<10)
	fail := func(err error) (int64, error) {
		return written, fmt.Errorf("tarsplit: join from %d, at tar byte %d, content byte %d: %w", from, tarPos, contentPos, err)
	}
	open := func(off int64) error {
		var err error
		if content == nil {
			content, err = openContent(off)
		}
		return err
	}
	for {
		e, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		switch e.Type {
		case storage.SegmentType:
			n := int64(len(e.Payload))
			if tarPos+n > from {
				m, err := w.Write(e.Payload[max(0, from-tarPos):])
				written += int64(m)
				if err != nil {
					return fail(err)
				}
			}
			tarPos += n
		case storage.FileType:
			size := e.Size
			if tarPos+size <= from {
				tarPos += size
				contentPos += size
				continue
			}
			skip := max(0, from-tarPos)
			if err := open(contentPos + skip); err != nil {
				return fail(err)
			}
			check := checkCRC && skip == 0 && size > 0
			dst := w
			if check {
				crc.Reset()
				dst = io.MultiWriter(w, crc)
			}
			m, err := io.CopyBuffer(dst, io.LimitReader(content, size-skip), buf)
			written += m
			if err != nil {
				return fail(err)
			}
			if m < size-skip {
				return fail(fmt.Errorf("content stream ends %d bytes short of a payload: %w", size-skip-m, io.ErrUnexpectedEOF))
			}
			if check && !bytes.Equal(crc.Sum(sum[:0]), e.Payload) {
				return fail(errors.New("payload does not match its checksum (crc64)"))
			}
			tarPos += size
			contentPos += size
		}
	}
	if from > tarPos {
		return written, fmt.Errorf("tarsplit: join from %d, past the tar's end at %d", from, tarPos)
	}
	// The content stream must end where the header stream says it does.
	if err := open(contentPos); err != nil {
		return fail(err)
	}
	var one [1]byte
	switch _, err := io.ReadFull(content, one[:]); err {
	case io.EOF:
		return written, nil
	case nil:
		return written, fmt.Errorf("tarsplit: join: content stream longer than the %d bytes the header stream accounts for", contentPos)
	default:
		return written, fmt.Errorf("tarsplit: join: content stream at its end: %w", err)
	}
}
