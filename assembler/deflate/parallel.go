package deflate

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// EncodeParallel writes the whole deflate stream of src (size bytes) to
// dst by encoding its segments, described by cps in stream order, on up to
// workers goroutines (0: GOMAXPROCS). Segments are written in order as
// they finish; the one being written streams, the others (at most
// workers-1) are held in memory, so memory is about workers times a
// segment's compressed size, plus each encoder's fixed state. The output
// equals the encode that recorded cps.
func EncodeParallel(ctx context.Context, dst io.Writer, src io.ReaderAt, size int64, cps []Checkpoint, workers int) error {
	if err := checkCover(cps, size); err != nil {
		return err
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	p := &parallel{segs: make([]segOut, len(cps))}
	p.cond.L = &p.mu
	stop := context.AfterFunc(ctx, func() { p.fail(ctx.Err()) })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	launched := 0
	launch := func() {
		i := launched
		launched++
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := EncodeSegment(segWriter{p, i}, src, size, cps[i])
			p.mu.Lock()
			p.segs[i].done, p.segs[i].err = true, err
			p.cond.Broadcast()
			p.mu.Unlock()
		}()
	}
	sp := NewSplicer(dst)
	for i, cp := range cps {
		for launched < len(cps) && launched < i+workers {
			launch()
		}
		if err := sp.Begin(cp.Bit, cp.EndBit); err != nil {
			p.fail(err)
			return err
		}
		if err := p.drain(i, sp); err != nil {
			p.fail(err)
			return fmt.Errorf("deflate: segment [%d,%d): %w", cp.In, cp.End, err)
		}
		if err := sp.End(); err != nil {
			p.fail(err)
			return err
		}
	}
	if err := sp.Close(); err != nil {
		p.fail(err)
		return err
	}
	return nil
}

// checkCover checks that cps are the segments of one stream of size bytes.
func checkCover(cps []Checkpoint, size int64) error {
	if len(cps) == 0 {
		return fmt.Errorf("deflate: no checkpoints")
	}
	for i, cp := range cps {
		want, wantBit := int64(0), int64(0)
		if i > 0 {
			want, wantBit = cps[i-1].End, cps[i-1].EndBit
		}
		switch {
		case cp.Level != cps[0].Level:
			return fmt.Errorf("deflate: checkpoint %d has level %d, the first %d", i, cp.Level, cps[0].Level)
		case cp.In != want || cp.Bit != wantBit:
			return fmt.Errorf("deflate: checkpoint %d starts at input %d bit %d, want %d bit %d", i, cp.In, cp.Bit, want, wantBit)
		case cp.Final != (i == len(cps)-1):
			return fmt.Errorf("deflate: checkpoint %d of %d: final %v", i, len(cps), cp.Final)
		}
	}
	if end := cps[len(cps)-1].End; end != size {
		return fmt.Errorf("deflate: checkpoints cover %d bytes, input has %d", end, size)
	}
	return nil
}

// parallel hands segment outputs from the encoding goroutines to the
// writing one.
type parallel struct {
	mu   sync.Mutex
	cond sync.Cond
	segs []segOut
	err  error // set once everything must stop
}

type segOut struct {
	chunks [][]byte
	done   bool
	err    error
}

func (p *parallel) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// drain writes segment i's output to sp as it comes, until it is done.
func (p *parallel) drain(i int, sp *Splicer) error {
	for {
		p.mu.Lock()
		s := &p.segs[i]
		for len(s.chunks) == 0 && !s.done && p.err == nil {
			p.cond.Wait()
		}
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return err
		}
		chunks := s.chunks
		s.chunks = nil
		done, err := s.done, s.err
		p.mu.Unlock()
		for _, c := range chunks {
			if _, err := sp.Write(c); err != nil {
				return err
			}
		}
		if done {
			return err
		}
	}
}

// segWriter collects one segment's output.
type segWriter struct {
	p *parallel
	i int
}

func (w segWriter) Write(b []byte) (int, error) {
	c := append([]byte(nil), b...)
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.err != nil {
		return 0, w.p.err
	}
	w.p.segs[w.i].chunks = append(w.p.segs[w.i].chunks, c)
	w.p.cond.Broadcast()
	return len(b), nil
}
