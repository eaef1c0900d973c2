package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress shows bytes processed out of a total on a terminal: a bar
// redrawn in place at most every Interval. Add is safe for concurrent use.
type Progress struct {
	w     io.Writer
	total int64
	live  bool
	// Interval is the least time between redraws (default 250ms).
	Interval time.Duration

	mu    sync.Mutex
	done  int64
	start time.Time
	drawn time.Time
}

// NewProgress returns a Progress towards total bytes writing to w; live
// redraws a bar as bytes come (for a terminal), otherwise only Finish
// writes, one line.
func NewProgress(w io.Writer, total int64, live bool) *Progress {
	now := time.Now()
	return &Progress{w: w, total: total, live: live, Interval: 250 * time.Millisecond, start: now}
}

// Add counts n more bytes processed.
func (p *Progress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if !p.live {
		return
	}
	now := time.Now()
	if now.Sub(p.drawn) < p.Interval {
		return
	}
	p.drawn = now
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(now))
}

// Finish writes the final line.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	line := fmt.Sprintf("read %s of %s in %s (%s/s)", HumanBytes(p.done), HumanBytes(p.total),
		now.Sub(p.start).Round(time.Millisecond), HumanBytes(p.rate(now)))
	if p.live {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *Progress) rate(now time.Time) int64 {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 {
		return 0
	}
	return int64(float64(p.done) / secs)
}

// line is the bar: percentage, bar, bytes, rate and time left.
func (p *Progress) line(now time.Time) string {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.done)/float64(p.total), 1)
	}
	full := int(frac * width)
	bar := strings.Repeat("=", full) + strings.Repeat(" ", width-full)
	if full < width {
		bar = bar[:full] + ">" + bar[full+1:]
	}
	s := fmt.Sprintf("%5.1f%% [%s] %s / %s  %s/s", 100*frac, bar, HumanBytes(p.done), HumanBytes(p.total), HumanBytes(p.rate(now)))
	if r := p.rate(now); r > 0 && p.total > p.done {
		s += "  " + time.Duration(float64(p.total-p.done)/float64(r)*float64(time.Second)).Round(time.Second).String() + " left"
	}
	return s
}
