package deflate

import (
	"errors"
	"fmt"
	"io"
)

// Compression levels, as in compress/flate.
const (
	HuffmanOnly     = -2
	NoCompression   = 0
	BestSpeed       = 1
	BestCompression = 9
	// DefaultCompression is level 6, as in compress/flate.
	DefaultCompression = -1
)

// Class names the output class this package writes, for recipes to
// record next to the level: compress/flate as go1.26 writes it. It does
// not follow the toolchain that builds this package; a later Go whose
// compress/flate writes other bytes is another class.
const Class = "go1.26"

// Options configure a [Writer] beyond its level.
type Options struct {
	// CheckpointSpacing is the least number of input bytes between two
	// checkpoints. Zero records no checkpoints.
	CheckpointSpacing int64
	// OnCheckpoint receives the stream's segments in order, each when it is
	// complete: at the next checkpoint, and the last one at Close. The
	// segments partition the input from offset 0 to the end. An error
	// stops the Writer and is returned by the call that recorded it.
	OnCheckpoint func(Checkpoint) error
}

var (
	errClosed = errors.New("deflate: writer is closed")
	// ErrMismatch reports that a segment did not come out as its checkpoint
	// says: the checkpoint does not belong to this input or level.
	ErrMismatch = errors.New("deflate: checkpoint does not match the input")
)

// A Writer is a raw deflate (RFC 1951) encoder whose output equals
// compress/flate's at the same level for the same sequence of Write, Flush
// and Close calls. Its memory does not depend on the input size.
type Writer struct {
	c   *coder
	in  int64 // input bytes taken
	err error
}

// NewWriter returns a Writer at level (-2..9, -1 for 6) writing to w.
func NewWriter(w io.Writer, level int) (*Writer, error) {
	return NewWriterOptions(w, level, Options{})
}

// NewWriterOptions is [NewWriter] with options.
func NewWriterOptions(w io.Writer, level int, opts Options) (*Writer, error) {
	if level == DefaultCompression {
		level = 6
	}
	if level < HuffmanOnly || level > BestCompression {
		return nil, fmt.Errorf("deflate: invalid level %d: want -2..9", level)
	}
	if opts.CheckpointSpacing < 0 {
		return nil, fmt.Errorf("deflate: negative checkpoint spacing %d", opts.CheckpointSpacing)
	}
	if opts.CheckpointSpacing > 0 && opts.OnCheckpoint == nil {
		return nil, errors.New("deflate: checkpoint spacing without OnCheckpoint")
	}
	c := newCoder(w, level, 0)
	if opts.CheckpointSpacing > 0 {
		c.rec = &recorder{spacing: opts.CheckpointSpacing, emit: opts.OnCheckpoint}
		c.rec.cur = Checkpoint{Level: level}
	}
	c.eng = newEngine(c, level)
	return &Writer{c: c}, nil
}

// Write compresses p.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	for len(p) > 0 {
		w.c.eng.step(false)
		k := w.c.eng.fill(p)
		p = p[k:]
		w.in += int64(k)
		if err := w.c.failed(); err != nil {
			w.err = err
			return 0, err
		}
	}
	return n, nil
}

// Flush encodes all pending input and writes a sync marker (an empty
// stored block), like compress/flate's Writer.Flush.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if r := w.c.rec; r != nil {
		r.cur.ev.flushes = append(r.cur.ev.flushes, w.in-r.cur.In)
	}
	w.c.eng.step(true)
	w.c.blk.writeStored(nil, false)
	w.c.bw.drain()
	if err := w.c.failed(); err != nil {
		w.err = err
	}
	return w.err
}

// Close encodes all pending input, ends the stream and, when recording,
// hands over the last segment. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err == errClosed {
		return nil
	}
	if w.err != nil {
		return w.err
	}
	w.c.eng.step(true)
	w.c.blk.writeStored(nil, true)
	end := w.c.bw.pos()
	if err := w.c.bw.finish(); err != nil {
		w.err = err
		return err
	}
	if r := w.c.rec; r != nil && r.err == nil {
		r.cur.End, r.cur.EndBit, r.cur.Final = w.in, end, true
		r.err = r.emit(r.cur)
	}
	if err := w.c.failed(); err != nil {
		w.err = err
		return err
	}
	w.err = errClosed
	return nil
}

// engine is one family of levels: fill and step mirror compress/flate's
// compressor, whose output depends on when input arrives only through
// them.
type engine interface {
	// fill buffers a prefix of p and returns its length.
	fill(p []byte) int
	// step encodes buffered input: what the level encodes before more
	// input arrives, or everything when sync.
	step(sync bool)
	// state is the engine's checkpoint state at the block boundary at
	// input offset at, which it has just reported to coder.cut; it also
	// starts the new segment's event log.
	state(at int64) engineState
}

func newEngine(c *coder, level int) engine {
	switch level {
	case NoCompression:
		return newStoreEngine(c, false, 0)
	case HuffmanOnly:
		return newStoreEngine(c, true, 0)
	case BestSpeed:
		return newFastEngine(c)
	default:
		return newLazyEngine(c, level)
	}
}

// coder is what the engines share: the bit and block writers, and the
// segment bookkeeping of recording (Writer) or resuming (a segment
// encode).
type coder struct {
	level int
	bw    *bitWriter
	blk   *blockWriter
	eng   engine

	rec *recorder // recording checkpoints, or nil

	// Resuming: stop after the block that ends at input offset stopAt
	// (-1: run to the end).
	stopAt  int64
	stopped bool
	// mismatch: the resumed state cannot be what the checkpoint claims.
	mismatch bool
}

func newCoder(w io.Writer, level int, startBit int64) *coder {
	return newCoderBuf(w, level, startBit, make([]byte, 0, bitBufSize+64))
}

// newCoderBuf is newCoder with the bit writer's output buffer (empty,
// with a capacity of at least bitBufSize+64).
func newCoderBuf(w io.Writer, level int, startBit int64, buf []byte) *coder {
	bw := newBitWriter(w, startBit, buf)
	return &coder{level: level, bw: bw, blk: newBlockWriter(bw), stopAt: -1}
}

// failed returns the first error of output or of checkpoint delivery.
func (c *coder) failed() error {
	if c.bw.err != nil {
		return c.bw.err
	}
	if c.rec != nil && c.rec.err != nil {
		return c.rec.err
	}
	return nil
}

// cut is called by the engine after each block it writes; at is the input
// offset where the block ends, sync whether it was cut by a flush or the
// end of input rather than by the level's own rule.
func (c *coder) cut(at int64, sync bool) {
	if c.stopAt >= 0 && at == c.stopAt {
		c.stopped = true
		return
	}
	r := c.rec
	if r == nil || r.err != nil || sync || at-r.cur.In < r.spacing {
		return
	}
	bit := c.bw.pos()
	r.cur.End, r.cur.EndBit = at, bit
	r.err = r.emit(r.cur)
	r.cur = Checkpoint{Level: c.level, In: at, Bit: bit, st: c.eng.state(at)}
}

// recording reports whether segment events are being logged.
func (c *coder) recording() bool { return c.rec != nil }

// segIn is the input offset where the segment being recorded starts.
func (c *coder) segIn() int64 {
	if c.rec == nil {
		return 0
	}
	return c.rec.cur.In
}

// recorder collects the segment in progress while a Writer records
// checkpoints.
type recorder struct {
	spacing int64
	emit    func(Checkpoint) error
	cur     Checkpoint
	err     error
}
