package deflate

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
)

// EncodeSegment writes the encoding of segment cp of the input src (size
// bytes) to dst: output bits [cp.Bit, cp.EndBit) as whole bytes, the
// first byte's cp.Bit%8 low bits and the last byte's bits past cp.EndBit
// zero (see [Splicer]). It reads src from cp.In-cp.HistoryLen() to at
// most cp.End+[Lookahead], and fails with [ErrMismatch] when the output
// does not come out as long as the checkpoint says.
func EncodeSegment(dst io.Writer, src io.ReaderAt, size int64, cp Checkpoint) error {
	if cp.End > size {
		return fmt.Errorf("%w: segment ends at %d, input has %d bytes", ErrMismatch, cp.End, size)
	}
	if err := cp.validate(); err != nil {
		return err
	}
	hp := histPool.Get().(*[winSize]byte)
	defer histPool.Put(hp)
	hist := hp[:cp.HistoryLen()]
	if n, err := src.ReadAt(hist, cp.In-int64(len(hist))); n < len(hist) {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("deflate: reading history before %d: %w", cp.In, err)
	}
	return ResumeSegment(dst, cp, hist, io.NewSectionReader(src, cp.In, size-cp.In))
}

// histPool holds EncodeSegment's history buffers, and bitPool the bit
// writers' output buffers of segment encodes: a cold pull encodes a
// segment every few MiB.
var (
	histPool = sync.Pool{New: func() any { return new([winSize]byte) }}
	bitPool  = sync.Pool{New: func() any { b := make([]byte, 0, bitBufSize+64); return &b }}
)

// ResumeSegment is [EncodeSegment] for a caller that streams the input:
// history is the cp.HistoryLen() bytes before cp.In, input the input from
// cp.In on (read to at most cp.End+[Lookahead], and to cp.End only for the
// final segment).
func ResumeSegment(dst io.Writer, cp Checkpoint, history []byte, input io.Reader) error {
	if err := cp.validate(); err != nil {
		return err
	}
	if int64(len(history)) != cp.HistoryLen() {
		return fmt.Errorf("deflate: %d history bytes, checkpoint needs %d", len(history), cp.HistoryLen())
	}
	r := &resumer{cp: cp, in: input, pos: cp.In, limit: cp.End}
	if !cp.Final {
		r.limit += Lookahead
	}
	bp := bitPool.Get().(*[]byte)
	r.c = newCoderBuf(dst, cp.Level, cp.Bit, (*bp)[:0])
	defer func() {
		*bp = r.c.bw.buf[:0]
		r.c.bw.buf = nil
		bitPool.Put(bp)
	}()
	if !cp.Final {
		r.c.stopAt = cp.End // stop after the block that ends there
	}
	for _, f := range cp.ev.flushes {
		r.flushes = append(r.flushes, cp.In+f)
	}
	var err error
	switch cp.Level {
	case NoCompression, HuffmanOnly:
		err = r.runBlocks(newStoreEngine(r.c, cp.Level == HuffmanOnly, cp.In))
	case BestSpeed:
		e := newFastEngine(r.c)
		r.c.eng = e
		e.blockIn = cp.In
		e.prev, e.prevLen = history, int(cp.st.phase)
		e.forced = cp.ev.matches
		err = r.runBlocks(e)
		if err == nil && len(e.forced) > 0 {
			err = fmt.Errorf("%w: %d recorded level-1 matches never reached", ErrMismatch, len(e.forced))
		}
	default:
		err = r.runLazy(history)
	}
	if err != nil {
		return err
	}
	if r.c.mismatch {
		return fmt.Errorf("%w: history too short for a match", ErrMismatch)
	}
	if got := r.c.bw.pos(); got != cp.EndBit {
		return fmt.Errorf("%w: segment [%d,%d) ends at bit %d, checkpoint says %d", ErrMismatch, cp.In, cp.End, got, cp.EndBit)
	}
	if err := r.c.bw.finish(); err != nil {
		return err
	}
	return nil
}

// resumer drives an engine through a segment: it feeds input as a caller
// writing large pieces would, replays the recorded flushes and slides,
// and stops after the block that ends at the segment's end.
type resumer struct {
	c       *coder
	cp      Checkpoint
	in      io.Reader
	pos     int64 // input offset of the next byte to read
	limit   int64 // read no input at or past this offset
	eof     bool
	flushes []int64 // input offsets, ascending
}

// read reads input [r.pos, to) into p (len(p) >= to-r.pos), returning how
// much it got.
func (r *resumer) read(p []byte, to int64) (int, error) {
	to = min(to, r.limit)
	if to <= r.pos || r.eof {
		return 0, nil
	}
	n, err := io.ReadAtLeast(r.in, p[:to-r.pos], 1)
	r.pos += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		r.eof, err = true, nil
	}
	if err != nil {
		return n, fmt.Errorf("deflate: reading input at %d: %w", r.pos, err)
	}
	return n, nil
}

func (r *resumer) nextFlush() int64 {
	if len(r.flushes) > 0 {
		return r.flushes[0]
	}
	return math.MaxInt64
}

// flushOrEnd handles input that cannot move on: a recorded flush, the end
// of the stream, or an error.
func (r *resumer) flushOrEnd(at int64) (done bool, err error) {
	eng := r.c.eng
	switch {
	case at == r.nextFlush():
		r.flushes = r.flushes[1:]
		eng.step(true)
		r.c.blk.writeStored(nil, false)
		return r.c.stopped, nil
	case r.cp.Final && at == r.cp.End && (r.eof || r.pos == r.limit):
		eng.step(true)
		r.c.blk.writeStored(nil, true)
		return true, nil
	case r.eof:
		return false, fmt.Errorf("%w: input ends at %d, segment [%d,%d)", ErrMismatch, at, r.cp.In, r.cp.End)
	default:
		return false, fmt.Errorf("%w: encoder stuck at input offset %d", ErrMismatch, at)
	}
}

// blockEngine is an engine that encodes one buffer-full per block
// (levels 0, 1, -2); it exposes its buffer so input can be read into it.
type blockEngine interface {
	engine
	// room is the unfilled rest of the buffer, whose first byte is input
	// offset at.
	room() (p []byte, at int64)
	// added counts k bytes read into room.
	added(k int)
}

func (e *storeEngine) room() ([]byte, int64) { return e.buf[e.n:], e.blockIn + int64(e.n) }
func (e *storeEngine) added(k int)           { e.n += k }
func (e *fastEngine) room() ([]byte, int64)  { return e.buf[e.n:], e.blockIn + int64(e.n) }
func (e *fastEngine) added(k int)            { e.n += k }

// runBlocks drives the block-per-buffer engines.
func (r *resumer) runBlocks(eng blockEngine) error {
	r.c.eng = eng
	for !r.c.stopped {
		p, at := eng.room()
		k, err := r.read(p, min(at+int64(len(p)), r.nextFlush()))
		if err != nil {
			return err
		}
		eng.added(k)
		if k > 0 {
			continue
		}
		if len(p) == 0 {
			eng.step(false)
			continue
		}
		done, err := r.flushOrEnd(at)
		if err != nil || done {
			return err
		}
	}
	return nil
}

// runLazy drives the hash-chain engine (levels 2..9).
func (r *resumer) runLazy(history []byte) error {
	cp := r.cp
	e := newLazyEngineWith(r.c, cp.Level, getLazyTables())
	defer e.release()
	r.c.eng = e
	phase := int(cp.st.phase)
	e.base = cp.In - int64(phase)
	e.index, e.end, e.blockStart = phase, phase, phase
	copy(e.window[phase-len(history):phase], history)
	slides := make([]int64, len(cp.ev.slides))
	for i, s := range cp.ev.slides {
		slides[i] = cp.In + s
	}
	hashed := len(history) == 0
	for !r.c.stopped {
		// Slide where the original did: at a recorded position, or else
		// where a full window makes it.
		next := int64(-1)
		if len(slides) > 0 && slides[0] <= e.base+2*winSize {
			next = slides[0]
		}
		if next >= 0 && e.base+int64(e.index) == next || next < 0 && e.index >= canonIndex {
			if e.index < slideIndex {
				return fmt.Errorf("%w: recorded slide at %d, before the window can slide", ErrMismatch, next)
			}
			if next >= 0 {
				slides = slides[1:]
			}
			e.slide()
			continue
		}
		e.stopIndex = math.MaxInt
		if next >= 0 {
			e.stopIndex = int(next - e.base)
		}
		k, err := r.read(e.window[e.end:], min(e.base+2*winSize, r.nextFlush()))
		if err != nil {
			return err
		}
		e.end += k
		if !hashed {
			if e.end-e.index < minMatch-1 && !r.eof && r.pos < r.limit {
				continue
			}
			if err := r.hashHistory(e); err != nil {
				return err
			}
			hashed = true
		}
		before := e.index
		e.step(false)
		if k > 0 || e.index != before {
			continue
		}
		done, err := r.flushOrEnd(e.base + int64(e.end))
		if err != nil || done {
			return err
		}
	}
	if len(slides) > 0 && slides[0] < r.cp.End {
		return fmt.Errorf("%w: recorded slide at %d not reached", ErrMismatch, slides[0])
	}
	return nil
}

// hashHistory hashes the history positions the original had hashed.
func (r *resumer) hashHistory(e *lazyEngine) error {
	in := r.cp.In
	from := max(e.base, in-r.cp.st.hist)
	if e.base+int64(e.end) < in+minMatch-1 {
		return fmt.Errorf("%w: input ends at %d, right after the checkpoint", ErrMismatch, e.base+int64(e.end))
	}
	runs := r.cp.st.runs
	for p := from; p < in; p++ {
		for len(runs) > 0 && in+runs[0].end <= p {
			runs = runs[1:]
		}
		if len(runs) > 0 && in+runs[0].start <= p {
			continue
		}
		e.insert(int(p - e.base))
	}
	return nil
}
