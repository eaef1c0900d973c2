package tarsplit

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc64"
	"io"

	"github.com/vbatts/tar-split/tar/storage"
)

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
		return written, fmt.Errorf("tarsplit: join from %d, at tar byte %d: %w", from, tarPos, err)
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
			if content == nil {
				if content, err = openContent(contentPos + skip); err != nil {
					return fail(err)
				}
			}
			dst := w
			if skip == 0 {
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
			if skip == 0 && size > 0 && !bytes.Equal(crc.Sum(sum[:0]), e.Payload) {
				return fail(errors.New("payload does not match its crc64"))
			}
			tarPos += size
			contentPos += size
		}
	}
	if from > tarPos {
		return written, fmt.Errorf("tarsplit: join from %d, past the tar's end at %d", from, tarPos)
	}
	if content != nil {
		var one [1]byte
		switch _, err := io.ReadFull(content, one[:]); err {
		case io.EOF:
		case nil:
			return written, fmt.Errorf("tarsplit: join: content stream longer than the %d bytes the header stream accounts for", contentPos)
		default:
			return written, fmt.Errorf("tarsplit: join: content stream at its end: %w", err)
		}
	}
	return written, nil
}
