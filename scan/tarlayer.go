package scan

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// TarLayer is a layer read as a plain tar stream, once, front to back: an
// opaque or pending layer, decompressed by the caller. A file the
// analyzers open is read as it passes, as far as they read it: up to
// MemLimit bytes in memory, the rest spooled to a temporary file (so that
// debug/buildinfo gets an io.ReaderAt over a Go binary), never the whole
// layer.
type TarLayer struct {
	R io.Reader
	// TempDir holds spool files ("": os.TempDir()).
	TempDir string
	// MemLimit is how much of one file is kept in memory before spooling
	// to disk (default 1 MiB).
	MemLimit int64
}

// TarFormatError says the tar stream itself is broken (truncated, a header
// that does not parse, a size that runs past the end): a property of the
// layer, recorded in the inventory rather than failing the analysis.
type TarFormatError struct {
	Entry string // the last entry read, if any
	Err   error
}

func (e *TarFormatError) Error() string {
	if e.Entry == "" {
		return "tar: " + e.Err.Error()
	}
	return fmt.Sprintf("tar: after entry %q: %v", e.Entry, e.Err)
}
func (e *TarFormatError) Unwrap() error { return e.Err }

// Walk implements Layer. Errors reading R are ReadErrors, except those R
// wraps in a *TarFormatError (a stream that does not decompress): like a
// broken tar, they give a *TarFormatError after the entries before the
// break were walked.
func (l *TarLayer) Walk(ctx context.Context, fn WalkFunc) (ReadStats, error) {
	var st ReadStats
	src := &srcReader{r: l.R}
	tr := tar.NewReader(src)
	memLimit := l.MemLimit
	if memLimit <= 0 {
		memLimit = 1 << 20
	}
	last := ""
	fail := func(err error) (ReadStats, error) {
		st.Uncompressed = src.n
		st.StoreRead = src.n
		if src.err != nil {
			return st, &ReadError{Err: src.err}
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return st, &TarFormatError{Entry: last, Err: err}
	}
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		f := fileOf(h)
		last = f.Path
		var sp *spool
		open := func() (Content, error) {
			if !f.Regular() {
				return nil, errNotRegular
			}
			if sp == nil {
				st.FilesRead++
				sp = &spool{r: tr, size: h.Size, memLimit: memLimit, dir: l.TempDir, src: src}
			}
			return sp, nil
		}
		err = fn(f, open)
		if sp != nil {
			st.ContentRead += sp.have
			sp.close()
			if sp.rerr != nil && err == nil && !errors.As(sp.rerr, new(*ReadError)) {
				// The payload ended early: the tar is broken here.
				return fail(sp.rerr)
			}
		}
		if err != nil {
			st.Uncompressed = src.n
			st.StoreRead = src.n
			return st, err
		}
	}
	// Count the whole stream, including what follows the archive's end.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fail(err)
	}
	st.Uncompressed = src.n
	st.StoreRead = src.n
	return st, nil
}

// srcReader counts the tar stream's bytes and keeps its first error, so
// that a source failure is told apart from a broken tar.
type srcReader struct {
	r   io.Reader
	n   int64
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	// An error R marks as the layer's own (a *TarFormatError: its
	// compressed stream is corrupt, it inflates past a limit) breaks the
	// tar like a bad header does; any other is a failure to read it.
	if err != nil && err != io.EOF && s.err == nil && !errors.As(err, new(*TarFormatError)) {
		s.err = err
	}
	return n, err
}

// spool is the content of the entry a tar reader is at, read from the
// stream on demand as far as ReadAt asks: the first memLimit bytes in
// memory, the rest in a temporary file.
type spool struct {
	r        io.Reader
	src      *srcReader
	size     int64
	memLimit int64
	dir      string

	mem  []byte
	file *os.File
	have int64 // bytes read from the stream
	rerr error // sticky error filling
}

func (s *spool) Size() int64 { return s.size }

// fill reads the stream up to end.
func (s *spool) fill(end int64) error {
	if s.rerr != nil {
		return s.rerr
	}
	buf := make([]byte, 64<<10)
	for s.have < end {
		want := min(int64(len(buf)), end-s.have)
		if s.have < s.memLimit {
			want = min(want, s.memLimit-s.have)
		}
		n, err := io.ReadFull(s.r, buf[:want])
		if n > 0 {
			if werr := s.keep(buf[:n]); werr != nil {
				s.rerr = werr
				return werr
			}
		}
		if err != nil {
			if s.src.err != nil {
				err = &ReadError{Err: s.src.err}
			} else if errors.Is(err, io.EOF) {
				err = fmt.Errorf("file ends after %d of its %d bytes: %w", s.have, s.size, io.ErrUnexpectedEOF)
			}
			s.rerr = err
			return err
		}
	}
	return nil
}

func (s *spool) keep(b []byte) error {
	if s.have < s.memLimit {
		s.mem = append(s.mem, b...)
		s.have += int64(len(b))
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "chunkyard-scan-*")
		if err != nil {
			return &ReadError{Err: fmt.Errorf("spooling a file: %w", err)}
		}
		s.file = f
	}
	if _, err := s.file.Write(b); err != nil {
		return &ReadError{Err: fmt.Errorf("spooling a file: %w", err)}
	}
	s.have += int64(len(b))
	return nil
}

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), s.size)
	if err := s.fill(end); err != nil {
		return 0, err
	}
	n := 0
	for off < end {
		var k int
		if off < int64(len(s.mem)) {
			k = copy(p[n:end-off+int64(n)], s.mem[off:])
		} else {
			var err error
			k, err = s.file.ReadAt(p[n:int64(n)+end-off], off-int64(len(s.mem)))
			if err != nil && k == 0 {
				return n, &ReadError{Err: err}
			}
		}
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *spool) close() {
	if s.file != nil {
		name := s.file.Name()
		s.file.Close()
		os.Remove(name)
		s.file = nil
	}
	s.mem = nil
}
