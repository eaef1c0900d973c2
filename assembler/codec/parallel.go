package codec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Slots bounds the encoding goroutines of many encodes together: each
// goroutine an encode runs beyond the first (which its caller accounts
// for) holds a slot, taken with TryAcquire and given back with Release.
type Slots interface {
	TryAcquire() bool
	Release()
}

// Encode writes the blob from Offset(first) to its end to dst, encoding
// segments on up to workers goroutines at once (the caller's own slot
// and, past the first, slots taken from slots without waiting; nil
// slots: no bound but workers). src is the raw input from
// Segments()[first].From on, read once, in order. Segments are written in
// order, the one being written as it comes. Encoders may run up to
// 2*workers segments ahead of the one being written, so that one whose
// segment finished early starts the next instead of waiting for the
// writer; memory is about 2*workers times a segment's raw input and
// output.
func (p *Plan) Encode(ctx context.Context, dst io.Writer, src io.Reader, first, workers int, slots Slots) error {
	if first < 0 || first >= len(p.segs) {
		return fmt.Errorf("codec: segment %d of %d", first, len(p.segs))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers = max(1, workers)
	r := &run{p: p, ctx: ctx, next: first, jobs: make([]*job, len(p.segs)), owned: 1, max: workers, ahead: 2 * workers, slots: slots}
	r.cond.L = &r.mu
	stop := context.AfterFunc(ctx, func() { r.fail(ctx.Err()) })
	defer stop()
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		r.dispatch(src, first)
	}()
	err := r.write(dst, first)
	r.fail(err) // stops the dispatcher, if it still runs
	cancel()
	<-dispatched
	r.wg.Wait()
	if slots != nil {
		for range r.owned - 1 {
			slots.Release()
		}
	}
	if err == nil && r.err != nil && !errors.Is(r.err, errDone) {
		err = r.err
	}
	return err
}

// errDone stops a run that wrote everything.
var errDone = errors.New("codec: encode done")

// run is one Encode: a dispatcher goroutine reads the input and starts
// segment encoders; the caller's goroutine writes their outputs in order.
type run struct {
	p     *Plan
	ctx   context.Context
	slots Slots
	wg    sync.WaitGroup

	mu      sync.Mutex
	cond    sync.Cond
	jobs    []*job
	next    int   // the segment being written
	running int   // segment encoders running
	owned   int   // slots held, the caller's included
	max     int   // encoders running at once, at most
	ahead   int   // segments started past the one being written, at most
	err     error // first failure, or errDone

	// Buffers done with, for reuse within this run: output chunks the
	// writer has written, and segment inputs whose encoder has finished.
	// A run allocates about as many as it holds at its busiest instead of
	// one per 64 KiB of output and one per segment.
	freeOut [][]byte
	freeIn  [][]byte
}

// getIn returns a buffer of n bytes for a segment's input, reused when
// one is free. Its content is garbage. Segments differ in length (they
// end at block boundaries), so a new buffer gets an eighth more room.
func (r *run) getIn(n int64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.freeIn) > 0 {
		b := r.freeIn[len(r.freeIn)-1]
		r.freeIn = r.freeIn[:len(r.freeIn)-1]
		if int64(cap(b)) >= n {
			return b[:n]
		}
	}
	return make([]byte, n, n+n/8)
}

// job is one segment's encode.
type job struct {
	chunks [][]byte
	done   bool
	err    error
}

func (r *run) fail(err error) {
	if err == nil {
		err = errDone
	}
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// dispatch reads each segment's input and starts its encoder once a
// slot is free and the writer is near enough.
func (r *run) dispatch(src io.Reader, first int) {
	segs := r.p.segs
	pos := segs[first].From // src's position
	var prev []byte         // the previous segment's input
	var prevFrom int64
	for i := first; i < len(segs); i++ {
		s := segs[i]
		// Read the input first (no slot needed), then wait for room. A
		// reused buffer may be prev itself (its encoder done): copy
		// moves the overlap down within it.
		buf := r.getIn(s.To - s.From)
		have := 0
		if prev != nil && s.From < prevFrom+int64(len(prev)) {
			have = copy(buf, prev[s.From-prevFrom:])
		}
		if at := s.From + int64(have); at > pos {
			if _, err := io.CopyN(io.Discard, src, at-pos); err != nil {
				r.fail(fmt.Errorf("codec: reading the raw input: %w", noEOF(err)))
				return
			}
			pos = at
		}
		if _, err := io.ReadFull(src, buf[have:]); err != nil {
			r.fail(fmt.Errorf("codec: reading the raw input at %d: %w", pos, noEOF(err)))
			return
		}
		pos = s.To
		prev, prevFrom = buf, s.From

		r.mu.Lock()
		for r.err == nil {
			if i < r.next+r.ahead {
				if r.running < r.owned {
					break
				}
				if r.owned < r.max && (r.slots == nil || r.slots.TryAcquire()) {
					r.owned++
					break
				}
			}
			r.cond.Wait()
		}
		if r.err != nil {
			r.mu.Unlock()
			return
		}
		j := &job{}
		r.jobs[i] = j
		r.running++
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := r.p.EncodeSegment(r.ctx, i, jobWriter{r, j}, buf)
			r.mu.Lock()
			j.done, j.err = true, err
			r.freeIn = append(r.freeIn, buf)
			r.running--
			r.cond.Broadcast()
			r.mu.Unlock()
		}()
	}
}

// chunkSize is the size of the pieces a segment's output is collected in.
const chunkSize = 64 << 10

// recycle takes back output chunks the writer has written: the splicer
// keeps no reference to them (it copies the byte it holds back).
func (r *run) recycle(chunks [][]byte) {
	r.mu.Lock()
	for _, c := range chunks {
		if cap(c) == chunkSize {
			r.freeOut = append(r.freeOut, c)
		}
	}
	r.mu.Unlock()
}

// jobWriter collects a segment's output for the writer.
type jobWriter struct {
	r *run
	j *job
}

func (w jobWriter) Write(b []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if w.r.err != nil {
		return 0, w.r.err
	}
	// Encoders write small pieces: fill chunks of 64 KiB (the writer
	// takes the whole list, so the last chunk is still this job's).
	if n := len(w.j.chunks); n > 0 && cap(w.j.chunks[n-1])-len(w.j.chunks[n-1]) >= len(b) {
		w.j.chunks[n-1] = append(w.j.chunks[n-1], b...)
	} else {
		var c []byte
		if n := len(w.r.freeOut); n > 0 && len(b) <= chunkSize {
			c = w.r.freeOut[n-1][:0]
			w.r.freeOut = w.r.freeOut[:n-1]
		} else {
			c = make([]byte, 0, max(len(b), chunkSize))
		}
		w.j.chunks = append(w.j.chunks, append(c, b...))
	}
	w.r.cond.Broadcast()
	return len(b), nil
}

// write writes the header (from the first segment), the segments'
// outputs spliced at their bit offsets, and the trailer.
func (r *run) write(dst io.Writer, first int) error {
	p := r.p
	if first == 0 {
		if _, err := dst.Write(p.header); err != nil {
			return err
		}
	}
	sp := splicer{w: dst, drop: p.segs[first].Bit%8 != 0}
	for i := first; i < len(p.segs); i++ {
		for {
			r.mu.Lock()
			for r.err == nil && (r.jobs[i] == nil || len(r.jobs[i].chunks) == 0 && !r.jobs[i].done) {
				r.cond.Wait()
			}
			if r.err != nil {
				err := r.err
				r.mu.Unlock()
				return err
			}
			j := r.jobs[i]
			chunks, done, jerr := j.chunks, j.done, j.err
			j.chunks = nil
			r.mu.Unlock()
			for _, c := range chunks {
				if err := sp.write(c); err != nil {
					return err
				}
			}
			r.recycle(chunks)
			if jerr != nil {
				return jerr
			}
			if done {
				break
			}
		}
		if err := sp.end(p.segs[i].EndBit%8 != 0); err != nil {
			return err
		}
		r.mu.Lock()
		r.jobs[i] = nil
		r.next = i + 1
		r.cond.Broadcast()
		r.mu.Unlock()
	}
	_, err := dst.Write(p.trailer)
	return err
}

// splicer joins segment pieces (see Plan.EncodeSegment) into the byte
// stream: a piece's first byte is ORed into the previous piece's last
// one when they share it.
type splicer struct {
	w       io.Writer
	held    []byte // the current piece's last byte so far, not written yet
	partial bool   // held is shared with the next piece
	started bool   // the current piece has had a byte
	drop    bool   // the first piece's first byte is shared with one not written
}

func (s *splicer) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if !s.started {
		s.started = true
		switch {
		case s.drop:
			s.drop = false
			b = b[1:]
		case s.partial:
			if len(s.held) > 0 {
				b[0] |= s.held[0]
			}
			s.held, s.partial = nil, false
		}
		if len(b) == 0 {
			return nil
		}
	}
	if len(s.held) > 0 {
		if _, err := s.w.Write(s.held); err != nil {
			return err
		}
	}
	if _, err := s.w.Write(b[:len(b)-1]); err != nil {
		return err
	}
	s.held = []byte{b[len(b)-1]}
	return nil
}

// end ends a piece; partial tells that its last byte is shared with the
// next piece.
func (s *splicer) end(partial bool) error {
	s.started = false
	if partial {
		s.partial = true
		return nil
	}
	if len(s.held) > 0 {
		_, err := s.w.Write(s.held)
		s.held = nil
		return err
	}
	return nil
}
