package codec

import (
	stdflate "compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	kflate "github.com/klauspost/compress/flate"
	"github.com/klauspost/pgzip"
)

const (
	// pgzipDefaultBlockSize is pgzip's default block size (1 MiB).
	pgzipDefaultBlockSize = 1 << 20
	// pgzipMinBlockSize: pgzip refuses blocks of its 16 KiB tail or less.
	pgzipMinBlockSize = 16384 + 1
	// pgzipMaxBlockSize bounds the memory a recipe can make a writer take.
	pgzipMaxBlockSize = 16 << 20
	// pgzipMaxBlocks caps pgzip's blocks in flight (memory: about twice
	// the block size each). The count does not shape the output.
	pgzipMaxBlocks = 4
)

// gzipWriter writes one gzip member: the header from the Encoding, then
// the encoder's body. For flate-based encoders it writes the trailer
// itself; pgzip writes its own body and trailer, and its header (always
// the 10 default bytes, as no header field is set on it) is dropped.
type gzipWriter struct {
	w      io.Writer
	header []byte         // pending until the first Write or Close
	body   io.WriteCloser // the encoder
	sink   *stickyWriter  // pgzip's destination; nil for flate encoders
	crc    uint32
	size   uint32
	closed bool
	err    error
}

func newGzipWriter(w io.Writer, enc Encoding, h *helper) (*gzipWriter, error) {
	switch {
	case enc.Level < -2 || enc.Level > 9:
		return nil, fmt.Errorf("%w: %s level %d", ErrInvalid, enc.Encoder, enc.Level)
	case enc.BlockSize != 0 && enc.Encoder != EncoderPgzip:
		return nil, fmt.Errorf("%w: %s has no block size", ErrInvalid, enc.Encoder)
	case enc.Zstd != nil:
		return nil, fmt.Errorf("%w: gzip with zstd parameters", ErrInvalid)
	}
	hdr := defaultGzipHeader(enc.Encoder, enc.Level)
	if enc.Gzip != nil {
		hdr = *enc.Gzip
	}
	header, err := hdr.appendTo(nil)
	if err != nil {
		return nil, err
	}
	z := &gzipWriter{w: w, header: header}
	if h != nil {
		// A helper's output comes from another goroutine: the header
		// must be out before it starts.
		if err := z.writeHeader(); err != nil {
			return nil, err
		}
	}
	switch enc.Encoder {
	case EncoderStdlib:
		z.body, err = stdflate.NewWriter(w, enc.Level)
	case EncoderKlauspostGzip:
		if h != nil {
			z.body, err = h.start(w, helperParams{Encoder: enc.Encoder, Level: enc.Level})
		} else {
			z.body, err = kflate.NewWriter(w, enc.Level)
		}
	case EncoderGNUGzip:
		// The helper writes gzip's whole member; its 10-byte header (no
		// name, no time) gives way to the recorded one, its trailer stays.
		if h == nil || enc.Level < 1 {
			return nil, fmt.Errorf("%w: gnu-gzip level %d", ErrUnavailable, enc.Level)
		}
		z.sink = &stickyWriter{w: w}
		z.body, err = h.start(&skipWriter{w: z.sink, skip: gzipFixedLen}, helperParams{Encoder: enc.Encoder, Level: enc.Level})
	default: // EncoderPgzip
		z.sink = &stickyWriter{w: w}
		z.body, err = newPgzip(z.sink, enc, h)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return z, nil
}

func newPgzip(w io.Writer, enc Encoding, h *helper) (io.WriteCloser, error) {
	if enc.BlockSize < pgzipMinBlockSize || enc.BlockSize > pgzipMaxBlockSize {
		return nil, fmt.Errorf("pgzip block size %d, want %d..%d", enc.BlockSize, pgzipMinBlockSize, pgzipMaxBlockSize)
	}
	blocks := min(runtime.GOMAXPROCS(0), pgzipMaxBlocks)
	body := &skipWriter{w: w, skip: gzipFixedLen}
	if h != nil {
		return h.start(body, helperParams{Encoder: enc.Encoder, Level: enc.Level, BlockSize: enc.BlockSize, Concurrency: blocks})
	}
	pw, err := pgzip.NewWriterLevel(body, enc.Level)
	if err != nil {
		return nil, err
	}
	if err := pw.SetConcurrency(enc.BlockSize, blocks); err != nil {
		return nil, err
	}
	return pw, nil
}

func (z *gzipWriter) writeHeader() error {
	if z.header != nil {
		_, z.err = z.w.Write(z.header)
		z.header = nil
	}
	return z.err
}

func (z *gzipWriter) Write(p []byte) (int, error) {
	if z.closed {
		return 0, fmt.Errorf("codec: write after close")
	}
	if err := z.writeHeader(); err != nil {
		return 0, err
	}
	if z.sink != nil {
		if z.err = z.sink.failed(); z.err != nil {
			return 0, z.err
		}
	}
	n, err := z.body.Write(p)
	if z.sink == nil {
		z.crc = crc32.Update(z.crc, crc32.IEEETable, p[:n])
		z.size += uint32(n)
	}
	if err != nil {
		z.err = err
	}
	return n, err
}

func (z *gzipWriter) Close() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	if err := z.writeHeader(); err != nil {
		z.body.Close() // release pgzip's goroutines
		return err
	}
	if z.err = z.body.Close(); z.err != nil {
		return z.err
	}
	if z.sink != nil {
		z.err = z.sink.failed()
		return z.err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], z.crc)
	binary.LittleEndian.PutUint32(trailer[4:], z.size)
	_, z.err = z.w.Write(trailer[:])
	return z.err
}

// skipWriter drops the first skip bytes written through it.
type skipWriter struct {
	w    io.Writer
	skip int
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := min(s.skip, len(p))
	s.skip -= n
	if n == len(p) {
		return n, nil
	}
	m, err := s.w.Write(p[n:])
	return n + m, err
}

// stickyWriter keeps the first error of w and swallows all later writes
// without error. pgzip, on an error from its writer, returns early from
// Close and leaves a goroutine blocked for ever; behind a stickyWriter it
// never sees one, finishes normally, and gzipWriter reports the error.
// pgzip writes from its own goroutine.
type stickyWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		_, s.err = s.w.Write(p)
	}
	return len(p), nil
}

func (s *stickyWriter) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
