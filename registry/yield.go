package registry

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// Conversions yield to pushes: a layer conversion (trial encodes, the
// split, the verifying encode) is CPU work that can wait, and on a small
// machine it would otherwise slow the pushes going on. While an upload is
// in flight, or was less than quietPeriod ago, a conversion pauses at its
// next mebibyte, up to ConvertOptions.MaxYield in all; then it goes on
// regardless, so a registry that is pushed to all the time still
// converts.

// quietPeriod is how long after the last upload activity a conversion
// waits before it goes on.
const quietPeriod = 500 * time.Millisecond

// pushActivity counts uploads in flight and remembers the last activity.
type pushActivity struct {
	active atomic.Int64
	last   atomic.Int64 // unix ns
}

// begin marks an upload request in flight; call the result when it ends.
func (p *pushActivity) begin() func() {
	p.active.Add(1)
	p.last.Store(time.Now().UnixNano())
	return func() {
		p.last.Store(time.Now().UnixNano())
		p.active.Add(-1)
	}
}

func (p *pushActivity) busy() bool {
	return p.active.Load() > 0 || time.Since(time.Unix(0, p.last.Load())) < quietPeriod
}

// yielder pauses one conversion while pushes go on, within a budget.
type yielder struct {
	ctx    context.Context
	act    *pushActivity
	budget atomic.Int64 // ns of pausing left
	paused atomic.Int64 // ns paused so far
}

func (s *Service) newYielder(ctx context.Context) *yielder {
	y := &yielder{ctx: ctx, act: &s.pushes}
	y.budget.Store(int64(s.convert.MaxYield))
	return y
}

// pause waits while pushes are busy, within the budget.
func (y *yielder) pause() {
	const step = 50 * time.Millisecond
	for y.budget.Load() > 0 && y.act.busy() && y.ctx.Err() == nil {
		time.Sleep(step)
		y.budget.Add(-int64(step))
		y.paused.Add(int64(step))
	}
}

// reader wraps r to pause every mebibyte.
func (y *yielder) reader(r io.ReadCloser) io.ReadCloser { return &yieldReader{ReadCloser: r, y: y} }

type yieldReader struct {
	io.ReadCloser
	y *yielder
	n int
}

func (r *yieldReader) Read(p []byte) (int, error) {
	if r.n >= 1<<20 {
		r.n = 0
		r.y.pause()
	}
	n, err := r.ReadCloser.Read(p)
	r.n += n
	return n, err
}
