package codec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/chunkyard/chunkyard/assembler/deflate"
	"github.com/chunkyard/chunkyard/assembler/deflate/gnu"
	"github.com/chunkyard/chunkyard/assembler/deflate/zlib"
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
// the encoder's body. For deflate encoders it writes the trailer itself;
// pgzip writes its own body and trailer, and its header (always the 10
// default bytes, as no header field is set on it) is dropped.
type gzipWriter struct {
	w      io.Writer
	header []byte         // pending until the first Write or Close
	body   io.WriteCloser // the encoder
	sink   *stickyWriter  // pgzip's destination; nil for deflate encoders
	stream *countWriter   // the deflate stream's destination, counting
	rec    *recorder      // checkpoints being recorded; nil: none
	finish func() error   // collects a zlib or gnu writer's checkpoints
	crc    uint32
	size   int64
	closed bool
	err    error
}

// stdlibPiece is the size of the writes a go-stdlib body gets:
// compress/flate's output can depend on how its input arrives (where the
// window slides), so a fixed cut makes it a function of the input alone,
// the same at every encode of a blob.
const stdlibPiece = 64 << 10

func newGzipWriter(w io.Writer, enc Encoding, h *helper, o WriterOptions) (*gzipWriter, error) {
	switch {
	case enc.Level < -2 || enc.Level > 9:
		return nil, fmt.Errorf("%w: %s level %d", ErrInvalid, enc.Encoder, enc.Level)
	case (enc.Encoder == EncoderGNUGzip || enc.Encoder == EncoderZlib || enc.Encoder == EncoderPigz) && enc.Level < 1:
		return nil, fmt.Errorf("%w: %s level %d", ErrInvalid, enc.Encoder, enc.Level)
	case enc.BlockSize != 0 && enc.Encoder != EncoderPgzip && enc.Encoder != EncoderPigz:
		return nil, fmt.Errorf("%w: %s has no block size", ErrInvalid, enc.Encoder)
	case enc.Pigz != nil && enc.Encoder != EncoderPigz:
		return nil, fmt.Errorf("%w: %s with pigz parameters", ErrInvalid, enc.Encoder)
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
	if h != nil || enc.Encoder == EncoderPigz {
		// A helper's or pigz's output comes from another goroutine: the
		// header must be out before it starts.
		if err := z.writeHeader(); err != nil {
			return nil, err
		}
	}
	z.stream = &countWriter{w: w}
	spacing := o.CheckpointSpacing
	switch enc.Encoder {
	case EncoderStdlib:
		var opts deflate.Options
		if spacing > 0 {
			z.rec = &recorder{kind: kindDeflate}
			opts = deflate.Options{CheckpointSpacing: spacing, OnCheckpoint: func(cp deflate.Checkpoint) error { return z.rec.add(cp) }}
		}
		var fw *deflate.Writer
		if fw, err = deflate.NewWriterOptions(z.stream, enc.Level, opts); err == nil {
			z.body = &pieceWriter{w: fw, buf: make([]byte, 0, stdlibPiece)}
		}
	case EncoderKlauspostGzip:
		if h != nil {
			z.body, err = h.start(w, helperParams{Encoder: enc.Encoder, Level: enc.Level})
		} else {
			z.body, err = kflate.NewWriter(w, enc.Level)
		}
	case EncoderGNUGzip:
		var gw *gnu.Writer
		if gw, err = gnu.NewWriterOptions(z.stream, gnu.Options{Level: enc.Level, CheckpointEvery: spacing}); err == nil {
			z.body = gw
			if spacing > 0 {
				z.rec = &recorder{kind: kindGNU}
				z.finish = func() error { return recordAll(z.rec, gw.Checkpoints()) }
			}
		}
	case EncoderZlib:
		var zw *zlib.Writer
		if zw, err = zlib.NewWriterOptions(z.stream, zlib.Options{Level: enc.Level, CheckpointEvery: spacing}); err == nil {
			z.body = zw
			if spacing > 0 {
				z.rec = &recorder{kind: kindZlib}
				z.finish = func() error { return recordAll(z.rec, zw.Checkpoints()) }
			}
		}
	case EncoderPigz:
		z.body, err = newPigz(z.stream, enc, o.Concurrency)
	default: // EncoderPgzip
		z.sink = &stickyWriter{w: w}
		z.body, err = newPgzip(z.sink, enc, h, o.Concurrency)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return z, nil
}

// recordAll adds a zlib or gnu writer's checkpoints to rec.
func recordAll[C interface{ MarshalBinary() ([]byte, error) }](rec *recorder, cps []C) error {
	for _, cp := range cps {
		if err := rec.add(cp); err != nil {
			return err
		}
	}
	return nil
}

func newPgzip(w io.Writer, enc Encoding, h *helper, concurrency int) (io.WriteCloser, error) {
	if enc.BlockSize < pgzipMinBlockSize || enc.BlockSize > pgzipMaxBlockSize {
		return nil, fmt.Errorf("pgzip block size %d, want %d..%d", enc.BlockSize, pgzipMinBlockSize, pgzipMaxBlockSize)
	}
	blocks := min(runtime.GOMAXPROCS(0), pgzipMaxBlocks)
	if concurrency > 0 {
		blocks = min(concurrency, pgzipMaxBlocks)
	}
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
		z.size += int64(n)
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
	binary.LittleEndian.PutUint32(trailer[4:], uint32(z.size))
	if _, z.err = z.w.Write(trailer[:]); z.err != nil {
		return z.err
	}
	if z.rec != nil {
		if z.finish != nil {
			if z.err = z.finish(); z.err != nil {
				return z.err
			}
		}
		z.rec.finish(z.size, z.stream.n, trailer[:])
	}
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// pieceWriter hands w its input in pieces of exactly cap(buf) bytes, the
// last one shorter.
type pieceWriter struct {
	w   *deflate.Writer
	buf []byte
}

func (p *pieceWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if len(p.buf) == 0 && len(b) >= cap(p.buf) {
			if _, err := p.w.Write(b[:cap(p.buf)]); err != nil {
				return n - len(b), err
			}
			b = b[cap(p.buf):]
			continue
		}
		k := min(len(b), cap(p.buf)-len(p.buf))
		p.buf = append(p.buf, b[:k]...)
		b = b[k:]
		if len(p.buf) == cap(p.buf) {
			if _, err := p.w.Write(p.buf); err != nil {
				return n - len(b), err
			}
			p.buf = p.buf[:0]
		}
	}
	return n, nil
}

func (p *pieceWriter) Close() error {
	if len(p.buf) > 0 {
		if _, err := p.w.Write(p.buf); err != nil {
			return err
		}
		p.buf = p.buf[:0]
	}
	return p.w.Close()
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

const (
	// pigzDefaultBlockSize is pigz's -b default, 128 KiB.
	pigzDefaultBlockSize = 128 << 10
	// pigzMinBlockSize is the smallest block pigz takes (-b 32).
	pigzMinBlockSize = 32 << 10
)

// pigzWriter feeds zlib.EncodePigz, which reads its input, from Write
// calls, through a pipe.
type pigzWriter struct {
	pw   *io.PipeWriter
	done chan error
}

func newPigz(w io.Writer, enc Encoding, concurrency int) (io.WriteCloser, error) {
	o := zlib.PigzOptions{Level: enc.Level, BlockSize: enc.BlockSize, Workers: max(1, concurrency)}
	if o.BlockSize == 0 {
		o.BlockSize = pigzDefaultBlockSize
	}
	if o.BlockSize < pigzMinBlockSize || o.BlockSize > pgzipMaxBlockSize {
		return nil, fmt.Errorf("pigz block size %d, want %d..%d", o.BlockSize, pigzMinBlockSize, pgzipMaxBlockSize)
	}
	if enc.Pigz != nil {
		o.Single, o.Independent = enc.Pigz.Single, enc.Pigz.Independent
	}
	pr, pw := io.Pipe()
	p := &pigzWriter{pw: pw, done: make(chan error, 1)}
	go func() {
		err := zlib.EncodePigz(context.Background(), w, pr, o)
		if err != nil {
			pr.CloseWithError(err) // a Write after a failure fails
		} else {
			pr.CloseWithError(errPigzDone)
		}
		p.done <- err
	}()
	return p, nil
}

func (p *pigzWriter) Write(b []byte) (int, error) { return p.pw.Write(b) }

// Close ends the input and waits for the encoder to finish.
func (p *pigzWriter) Close() error {
	p.pw.Close()
	err := <-p.done
	p.done <- err // a second Close returns the same
	return err
}

// errPigzDone fails a Write after the encoder has finished.
var errPigzDone = errors.New("codec: pigz writer closed")
