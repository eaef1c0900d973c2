package tarsplit

import (
	"fmt"
	"io"
)

// getter is the storage.FileGetter that asm.WriteOutputTarStream asks for
// each payload. tar-split keys payloads by name; here they are the content
// stream in order, so Get ignores the name and serves the next Size bytes,
// Size being that of the entry the decoder returned last (the one
// WriteOutputTarStream is asking for).
type getter struct {
	content io.Reader
	dec     *decoder
	read    int64 // content bytes served so far
	cur     payloadReader
}

func (g *getter) Get(string) (io.ReadCloser, error) {
	g.cur = payloadReader{g: g, left: g.dec.entry.Size}
	return &g.cur, nil
}

// payloadReader serves exactly left bytes of the content stream: io.EOF
// once they are served, without reading further, and an error wrapping
// io.ErrUnexpectedEOF if the content stream ends first.
type payloadReader struct {
	g    *getter
	left int64
}

func (r *payloadReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.g.content.Read(p)
	r.left -= int64(n)
	r.g.read += int64(n)
	switch {
	case err == io.EOF && r.left > 0:
		return n, fmt.Errorf("content stream ends %d bytes short of this payload: %w", r.left, io.ErrUnexpectedEOF)
	case err == nil && r.left == 0:
		return n, io.EOF
	}
	return n, err
}

func (r *payloadReader) Close() error { return nil }
