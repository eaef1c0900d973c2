package zlib

import (
	"errors"
	"fmt"
	"io"
)

// Class names the output class this package reproduces, for recipes to
// record next to the level: zlib 1.2.5 through 1.3.1 write the same bytes
// at these settings (see the package documentation).
const Class = "zlib-1.2-1.3"

// Errors of this package.
var (
	ErrLevel    = errors.New("zlib: level out of range 1..9")
	ErrClosed   = errors.New("zlib: writer closed")
	ErrState    = errors.New("zlib: call not allowed in this state")
	ErrMismatch = errors.New("zlib: input does not match the checkpoint")
)

// FlushMode selects what Writer.FlushMode appends after the pending input,
// with zlib's meaning of each flush.
type FlushMode int

const (
	// SyncFlush ends the block and adds an empty stored block, leaving the
	// output on a byte boundary (Z_SYNC_FLUSH).
	SyncFlush FlushMode = syncFlush
	// FullFlush is SyncFlush and forgets the history (Z_FULL_FLUSH).
	FullFlush FlushMode = fullFlush
	// BlockFlush ends the block and adds nothing (Z_BLOCK).
	BlockFlush FlushMode = blockFlush
	// PartialFlush ends the block and adds an empty fixed-code block
	// (Z_PARTIAL_FLUSH).
	PartialFlush FlushMode = partialFlush
)

// Options configure a Writer.
type Options struct {
	// Level is the compression level, 1 (fastest) to 9 (smallest).
	Level int
	// CheckpointEvery, if positive, makes the writer record a Checkpoint
	// at the first block boundary at least this many input bytes after
	// the previous one (or the start). See Writer.Checkpoints.
	CheckpointEvery int64
}

// Writer compresses what is written to it into a raw deflate stream (no
// zlib or gzip framing) identical to zlib 1.2.x/1.3.x's deflate at the
// same level, windowBits 15, memLevel 8 and the default strategy.
//
// Input is buffered until the encoder has as much as zlib's window has
// room for, so the output does not depend on how the input is split into
// Write calls: it is the output zlib gives when each deflate() call brings
// at least the free window space of new input (for instance the whole
// input at once), which is what every writer that feeds zlib large
// buffers gets.
//
// A Writer holds about 400 KiB whatever the input size.
type Writer struct {
	s      *state
	w      io.Writer
	err    error
	closed bool

	// a resumed segment still reading the window bytes after its
	// boundary, or nil
	prime *priming
	// the segment reached its end checkpoint: later input is ignored
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

// Reset discards the writer's state and makes it a new stream into w at
// the given level (zlib's deflateReset and deflateParams). Like zlib it
// keeps the window's bytes, which never change the output.
func (z *Writer) Reset(w io.Writer, level int) error {
	if level < 1 || level > 9 {
		return fmt.Errorf("%w: %d", ErrLevel, level)
	}
	z.s.reset(level)
	z.s.stop = -1
	if z.s.rec != nil {
		z.s.rec = newRecorder(z.s.rec.every)
	}
	z.w, z.err, z.closed, z.prime, z.stopped = w, nil, false, nil, false
	return nil
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
	if z.stopped {
		return n, nil
	}
	for {
		z.compact()
		k := min(len(p), cap(z.s.in)-len(z.s.in))
		z.s.in = append(z.s.in, p[:k]...)
		p = p[k:]
		if z.run(noFlush) != nil || len(p) == 0 || z.stopped {
			break
		}
	}
	if z.err != nil {
		return 0, z.err
	}
	return n, nil
}

// compact moves unread input to the front of the input buffer.
func (z *Writer) compact() {
	s := z.s
	if s.inPos == 0 {
		return
	}
	k := copy(s.in, s.in[s.inPos:])
	s.in = s.in[:k]
	s.inPos = 0
}

// run calls deflate with the flush mode and writes the completed bytes.
func (z *Writer) run(flush int) error {
	if z.stopped {
		return z.err
	}
	bs := z.s.deflate(flush)
	if bs == stopped {
		z.stopped = true
	}
	if flush != noFlush && z.s.rec != nil {
		z.s.rec.irregular(z.s.consumed())
	}
	return z.drain()
}

// drain writes the complete output bytes.
func (z *Writer) drain() error {
	if z.err != nil {
		return z.err
	}
	if z.s.bw.Buffered() == 0 {
		return nil
	}
	if _, err := z.w.Write(z.s.bw.Take()); err != nil {
		z.err = fmt.Errorf("zlib: writing output: %w", err)
	}
	return z.err
}

// FlushMode compresses all pending input and ends the block as zlib's
// deflate() does with the matching flush value. As in zlib, a flush that
// follows a flush of the same or a higher rank with no input in between
// does nothing.
func (z *Writer) FlushMode(m FlushMode) error {
	if z.err != nil {
		return z.err
	}
	if z.closed {
		return ErrClosed
	}
	if z.prime != nil {
		return ErrState
	}
	switch m {
	case SyncFlush, FullFlush, BlockFlush, PartialFlush:
	default:
		return fmt.Errorf("zlib: unknown flush mode %d", m)
	}
	return z.run(int(m))
}

// Flush is FlushMode(SyncFlush).
func (z *Writer) Flush() error { return z.FlushMode(SyncFlush) }

// SetDictionary primes the window with dict as zlib's
// deflateSetDictionary does on a raw stream (only its last 32 KiB count).
// It is allowed when no input is pending: at the start or after a flush.
// A writer recording checkpoints records none within 32 KiB after it.
func (z *Writer) SetDictionary(dict []byte) error {
	if z.err != nil {
		return z.err
	}
	if z.closed {
		return ErrClosed
	}
	if z.s.lookahead != 0 || z.s.avail() != 0 || z.prime != nil {
		return ErrState
	}
	z.s.setDictionary(dict)
	if z.s.rec != nil {
		z.s.rec.irregular(z.s.consumed())
	}
	return nil
}

// PendingBits is the number of bits of the last, incomplete output byte
// (zlib's deflatePending after a flush).
func (z *Writer) PendingBits() int { return int(z.s.bw.PendingBits()) }

// Prime appends the n (0..16) low bits of value to the output, as zlib's
// deflatePrime does. Use it only between blocks (after a flush).
func (z *Writer) Prime(n int, value int) error {
	if n < 0 || n > 16 {
		return fmt.Errorf("zlib: Prime of %d bits", n)
	}
	if z.s.blk.Len() != 0 || z.prime != nil {
		return ErrState
	}
	z.s.bw.PutBits(uint32(value)&(1<<n-1), uint(n))
	return nil
}

// Close compresses the pending input, ends the stream with a final block
// (Z_FINISH) and writes everything out. A resumed writer that stops at a
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
		if err := z.prime.finish(z.s); err != nil {
			z.err = err
			return err
		}
		z.prime = nil
	}
	if z.stopped {
		return z.drain()
	}
	z.s.closing = true
	z.run(finishFlush)
	if z.err == nil && z.s.stop >= 0 && !z.stopped {
		z.err = fmt.Errorf("%w: no block boundary at input offset %d", ErrMismatch, z.s.stop)
	}
	return z.err
}

// Tail returns the last, incomplete byte of a resumed segment that
// stopped at a checkpoint, and how many of its low bits belong to the
// stream (0..7). The next segment's first byte holds the other bits.
func (z *Writer) Tail() (byte, int) {
	b, n := z.s.bw.Tail()
	return b, int(n)
}

// OutputBits is the bit offset of the end of the output so far (for a
// resumed writer, counted from the start of the whole stream).
func (z *Writer) OutputBits() uint64 { return z.s.bw.Bits() }

// Checkpoints returns the checkpoints recorded so far (see
// Options.CheckpointEvery), in input order.
func (z *Writer) Checkpoints() []Checkpoint {
	if z.s.rec == nil {
		return nil
	}
	return append([]Checkpoint(nil), z.s.rec.cps...)
}
