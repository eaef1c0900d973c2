// Package zseg runs the segments of a deflate stream on several
// goroutines and splices their outputs, which meet at bit offsets, back
// into one stream in order. The encoders in assembler/deflate/zlib and
// assembler/deflate/gnu use it for their EncodeParallel.
package zseg

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
)

// Splicer writes segments of a bit stream in order. A segment's bytes
// start at the bit offset where the previous one ended: its first byte
// holds the previous segment's last, incomplete byte's bits as zeros, and
// the Splicer ORs them in.
type Splicer struct {
	w    io.Writer
	tail byte
	bits int
	err  error
}

// NewSplicer returns a Splicer writing to w.
func NewSplicer(w io.Writer) *Splicer { return &Splicer{w: w} }

// Segment appends one segment: its complete bytes, then its last,
// incomplete byte and how many of its bits are set (0..7).
func (s *Splicer) Segment(data []byte, tail byte, tailBits int) error {
	if s.err != nil {
		return s.err
	}
	if len(data) == 0 {
		s.tail |= tail
		s.bits = tailBits
		return nil
	}
	if s.bits > 0 {
		data[0] |= s.tail
	}
	if _, err := s.w.Write(data); err != nil {
		s.err = fmt.Errorf("zseg: writing output: %w", err)
		return s.err
	}
	s.tail, s.bits = tail, tailBits
	return nil
}

// Close writes the last incomplete byte, if any.
func (s *Splicer) Close() error {
	if s.err != nil || s.bits == 0 {
		return s.err
	}
	_, err := s.w.Write([]byte{s.tail})
	s.bits = 0
	if err != nil {
		s.err = fmt.Errorf("zseg: writing output: %w", err)
	}
	return s.err
}

// EncodeFunc encodes segment k into w and returns the segment's last,
// incomplete byte and its bit count.
type EncodeFunc func(ctx context.Context, k int, w io.Writer) (tail byte, tailBits int, err error)

type result struct {
	buf      *bytes.Buffer
	tail     byte
	tailBits int
	err      error
}

// Run encodes segments 0..n-1 on up to workers goroutines and writes them
// to dst in order as they complete. At most 2*workers segments are held
// at once, so memory is bounded by the segment size, not the stream size.
func Run(ctx context.Context, dst io.Writer, n, workers int, encode EncodeFunc) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan result, n)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	jobs := make(chan int)
	slots := make(chan struct{}, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				var r result
				r.buf = new(bytes.Buffer)
				r.tail, r.tailBits, r.err = encode(ctx, k, r.buf)
				results[k] <- r
			}
		}()
	}
	go func() {
		defer close(jobs)
		for k := range n {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	sp := NewSplicer(dst)
	var err error
	for k := range n {
		var r result
		select {
		case r = <-results[k]:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
		if r.err != nil {
			err = fmt.Errorf("segment %d: %w", k, r.err)
			break
		}
		if err = sp.Segment(r.buf.Bytes(), r.tail, r.tailBits); err != nil {
			break
		}
		<-slots
	}
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	return sp.Close()
}
