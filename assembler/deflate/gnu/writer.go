package gnu

import (
	"errors"
	"fmt"
	"io"
)

// Class names the encoder whose bytes this package writes, for recipes
// to record next to the level.
const Class = "gnu-gzip-1.12"

// Errors of this package.
var (
	ErrLevel    = errors.New("gnu: level out of range 1..9")
	ErrClosed   = errors.New("gnu: writer closed")
	ErrMismatch = errors.New("gnu: input does not match the checkpoint")
)

// Options configure a Writer.
type Options struct {
	// Level is gzip's -1 .. -9.
	Level int
	// CheckpointEvery, if positive, makes the writer record a Checkpoint
	// at the first block boundary at least this many input bytes after
	// the previous one (or the start). See Writer.Checkpoints.
	CheckpointEvery int64
}

// Writer compresses what is written to it into the deflate stream GNU
// gzip 1.12 writes between its 10-byte header and its 8-byte trailer
// (gzip -c -n -LEVEL < file). The output does not depend on how the input
// is split into Write calls: it is gzip's output when it reads a regular
// file, whose reads return every byte asked for until the end.
//
// A Writer holds about 500 KiB whatever the input size.
type Writer struct {
	s       *state
	w       io.Writer
	err     error
	closed  bool
	prime   *priming
	stopped bool
}

// NewWriter returns a Writer compressing at level (1..9) into w.
func NewWriter(w io.Writer, level int) (*Writer, error) {
	return NewWriterOptions(w, Options{Level: level})
}

// NewWriterOptions returns a Writer configured by o.
func NewWriterOptions(w io.Writer, o Options) (*Writer, error) {
	if o.Level < 1 || o.Level > 9 {
		return nil, fmt.Errorf("%w: %d", ErrLevel, o.Level)
	}
	s := newState(o.Level)
	if o.CheckpointEvery > 0 {
		s.rec = newRecorder(o.CheckpointEvery)
	}
	return &Writer{s: s, w: w}, nil
}

// Write compresses p. It returns len(p) unless writing the output failed.
func (z *Writer) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.closed {
		return 0, ErrClosed
	}
	n := len(p)
	if z.prime != nil {
		p = z.prime.take(z.s, p)
		if z.prime.need > 0 {
			return n, nil
		}
		z.prime = nil
	}
	for !z.stopped && len(p) > 0 {
		s := z.s
		if s.inPos > 0 {
			k := copy(s.in, s.in[s.inPos:])
			s.in, s.inPos = s.in[:k], 0
		}
		k := min(len(p), cap(s.in)-len(s.in))
		s.in = append(s.in, p[:k]...)
		p = p[k:]
		if z.run() != nil {
			return 0, z.err
		}
	}
	return n, nil
}

func (z *Writer) run() error {
	if z.stopped {
		return z.err
	}
	if z.s.run() == stopped {
		z.stopped = true
	}
	return z.drain()
}

func (z *Writer) drain() error {
	if z.err != nil {
		return z.err
	}
	if z.s.bw.Buffered() == 0 {
		return nil
	}
	if _, err := z.w.Write(z.s.bw.Take()); err != nil {
		z.err = fmt.Errorf("gnu: writing output: %w", err)
	}
	return z.err
}

// Close compresses the rest of the input, ends the stream with its final
// block and writes everything out. A resumed writer that stops at a
// checkpoint instead keeps the bits of its last partial byte for Tail.
func (z *Writer) Close() error {
	if z.closed {
		return z.err
	}
	z.closed = true
	if z.err != nil {
		return z.err
	}
	if z.prime != nil {
		if err := z.prime.finish(); err != nil {
			z.err = err
			return err
		}
		z.prime = nil
	}
	if !z.stopped {
		z.s.closing = true
		z.run()
	}
	if z.err == nil && z.s.stop >= 0 && !z.stopped {
		z.err = fmt.Errorf("%w: no block boundary at input offset %d", ErrMismatch, z.s.stop)
	}
	if z.err == nil {
		z.drain()
	}
	return z.err
}

// Tail returns the last, incomplete byte of a resumed segment that
// stopped at a checkpoint, and how many of its low bits belong to the
// stream (0..7).
func (z *Writer) Tail() (byte, int) {
	b, n := z.s.bw.Tail()
	return b, int(n)
}

// OutputBits is the bit offset of the end of the output so far (for a
// resumed writer, counted from the start of the whole stream).
func (z *Writer) OutputBits() uint64 { return z.s.bw.Bits() }

// Checkpoints returns the checkpoints recorded so far, in input order.
func (z *Writer) Checkpoints() []Checkpoint {
	if z.s.rec == nil {
		return nil
	}
	return append([]Checkpoint(nil), z.s.rec.cps...)
}
