package scan

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/chunkyard/chunkyard/assembler/tarsplit"
)

// SplitLayer is a layer stored split (see package assembler/tarsplit): its
// header stream, read whole, lists the entries and where each payload
// lies in the content stream; only the files the analyzers open are read
// from Content, and only the ranges they ask for.
type SplitLayer struct {
	Headers io.Reader   // the header stream
	Content io.ReaderAt // the content stream (over chunks, in the server)

	st ReadStats
	ca *countReaderAt
}

// stats implements lateOpener: the walk's statistics with what was read
// after it.
func (l *SplitLayer) stats() ReadStats {
	st := l.st
	if l.ca != nil {
		st.ContentRead = l.ca.n.Load()
		st.FilesRead = int(l.ca.files.Load())
	}
	if sc, ok := l.Content.(StoreCounter); ok {
		st.StoreRead = sc.StoreBytesRead()
	}
	return st
}

// Walk implements Layer. The OpenFuncs it passes stay valid after it
// returns.
func (l *SplitLayer) Walk(ctx context.Context, fn WalkFunc) (ReadStats, error) {
	hc := &countReader{r: l.Headers}
	ca := &countReaderAt{r: l.Content}
	l.ca = ca
	totals, err := tarsplit.Entries(hc, func(e tarsplit.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f := fileOf(e.Header)
		sparse := e.Header.Typeflag == 'S' || e.Size != e.Header.Size
		open := func() (Content, error) {
			if !f.Regular() {
				return nil, errNotRegular
			}
			if sparse {
				return nil, fmt.Errorf("sparse file: its content stream holds fragments, not the file")
			}
			ca.files.Add(1)
			return &section{r: ca, off: e.Offset, n: e.Size}, nil
		}
		return fn(f, open)
	})
	l.st.HeaderBytes = hc.n
	if err == nil {
		l.st.Uncompressed = totals.TarBytes
	}
	return l.stats(), err
}

// section is one file of the content stream. Its read errors are
// ReadErrors: the stored layer could not be read.
type section struct {
	r   io.ReaderAt
	off int64
	n   int64
}

func (s *section) Size() int64 { return s.n }

func (s *section) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= s.n {
		return 0, io.EOF
	}
	var short bool
	if rest := s.n - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := s.r.ReadAt(p, s.off+off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	if err != nil {
		return n, &ReadError{Err: err}
	}
	if short {
		return n, io.EOF
	}
	return n, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type countReaderAt struct {
	r     io.ReaderAt
	n     atomic.Int64
	files atomic.Int64
}

func (c *countReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}
