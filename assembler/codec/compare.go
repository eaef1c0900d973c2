package codec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync/atomic"
)

// Comparer states.
const (
	matching int32 = iota
	differs
	failed // reading the original failed
)

// comparer is the io.Writer a trial's encoder writes into: it compares
// each byte with the original's as it comes. It never returns an error to
// the encoder (pgzip leaks a goroutine when its writer fails); after the
// first difference it swallows the rest, and the trial, polling stopped,
// stops feeding the encoder. Writes may come from an encoder's goroutine.
type comparer struct {
	orig  *bufio.Reader
	off   int64 // bytes matched
	err   error // why reading the original failed
	state atomic.Int32
}

func (c *comparer) stopped() bool { return c.state.Load() != matching }

func (c *comparer) Write(p []byte) (int, error) {
	for q := p; len(q) > 0 && !c.stopped(); {
		want, err := c.orig.Peek(min(len(q), c.orig.Size()))
		n := len(want)
		if !bytes.Equal(want, q[:n]) {
			c.state.Store(differs)
			break
		}
		c.off += int64(n)
		c.orig.Discard(n)
		q = q[n:]
		switch {
		case err == nil || errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF): // the original ends before the output
			c.state.Store(differs)
		default:
			c.err = err
			c.state.Store(failed)
		}
	}
	return len(p), nil
}

// result tells whether the output, closed with closeErr, equalled the
// whole original.
func (c *comparer) result(closeErr error) (bool, error) {
	switch c.state.Load() {
	case failed:
		return false, c.err
	case differs:
		return false, nil
	}
	if closeErr != nil {
		return false, closeErr
	}
	switch _, err := c.orig.ReadByte(); {
	case err == nil: // the original goes on after the output
		return false, nil
	case errors.Is(err, io.EOF):
		return true, nil
	default:
		return false, err
	}
}
