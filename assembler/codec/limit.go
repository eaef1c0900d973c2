package codec

import (
	"errors"
	"io"
)

// ErrInflateLimit is returned by a LimitInflated reader whose stream grows
// past its bound: a decompression bomb, or a layer too large to convert.
var ErrInflateLimit = errors.New("codec: decompressed stream exceeds its limit")

// LimitInflated returns a reader of r that fails with ErrInflateLimit once
// more than max bytes come out of it.
func LimitInflated(r io.Reader, max int64) io.Reader { return &inflateLimit{r: r, left: max} }

type inflateLimit struct {
	r    io.Reader
	left int64
}

func (l *inflateLimit) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one byte past the bound tells it is crossed
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, ErrInflateLimit
	}
	return n, err
}
