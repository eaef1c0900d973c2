package tarsplit

import (
	"bufio"
	"fmt"
	"io"

	"github.com/vbatts/tar-split/tar/asm"
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
	var n int64
	dec := newDecoder(headers)
	get := &getter{content: content, dec: dec}
	if err := asm.WriteOutputTarStream(get, dec, writeCounter{w: w, n: &n}); err != nil {
		return n, fmt.Errorf("tarsplit: join at tar byte %d, content byte %d: %w", n, get.read, err)
	}
	end := dec.end
	if end == nil {
		// WriteOutputTarStream stops at the decoder's io.EOF, which comes
		// only after a checked end record.
		return n, fmt.Errorf("tarsplit: join: header stream ended without end record")
	}
	if n != end.tarBytes || get.read != end.contentBytes {
		return n, fmt.Errorf("tarsplit: join wrote %d tar bytes from %d content bytes; header stream says %d and %d",
			n, get.read, end.tarBytes, end.contentBytes)
	}
	var one [1]byte
	switch _, err := io.ReadFull(content, one[:]); err {
	case io.EOF:
		return n, nil
	case nil:
		return n, fmt.Errorf("tarsplit: join: content stream longer than the %d bytes the header stream accounts for", end.contentBytes)
	default:
		return n, fmt.Errorf("tarsplit: join: content stream at its end: %w", err)
	}
}
