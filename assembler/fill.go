package assembler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// A fill encodes one cold layer into a new layer cache entry, once, for
// every pull of that layer that arrives while it runs (see layer.go). Its
// encode does not wait for any reader: readers follow the bytes written so
// far, each at its own pace, and wait when they have caught up. The fill
// waits for an encode slot first; if every reader leaves before it gets
// one, it gives up. Once it runs it finishes, so that the next pull is hot.

// fillChunk is how much encoded output a fill writes between telling its
// readers.
const fillChunk = 256 << 10

type fill struct {
	a      *Assembler
	b      Blob
	key    string
	ctx    context.Context // ends when the last reader leaves before the encode starts
	cancel context.CancelFunc

	// guarded by a.fillsMu
	readers int
	started bool

	// progress is closed, and replaced, each time written or done changes
	progress chan struct{}
	f        *os.File // read side of the entry being written; set once, before written > 0
	written  int64
	done     bool
	err      error // why the encode failed, once done
}

// joinFill returns the running fill of layer b, starting one if there is
// none, counting the caller as a reader (fillReader.Close uncounts it).
func (a *Assembler) joinFill(b Blob) *fill {
	key := LayerCacheKey(b.Digest)
	a.fillsMu.Lock()
	defer a.fillsMu.Unlock()
	fl, ok := a.fills[key]
	if ok {
		a.stats.joined.Add(1)
	} else {
		a.stats.misses.Add(1)
		ctx, cancel := context.WithCancel(a.ctx)
		fl = &fill{a: a, b: b, key: key, ctx: ctx, cancel: cancel, progress: make(chan struct{})}
		a.fills[key] = fl
		a.wg.Add(1)
		go fl.run()
	}
	fl.readers++
	return fl
}

// leave uncounts a reader; the last one to leave a fill that has not
// started stops it.
func (fl *fill) leave() {
	a := fl.a
	a.fillsMu.Lock()
	defer a.fillsMu.Unlock()
	fl.readers--
	if fl.readers == 0 && !fl.started {
		fl.cancel()
	}
	fl.closeFileIfIdle()
}

// closeFileIfIdle closes the read side once the fill is done and no
// reader is left; a.fillsMu held.
func (fl *fill) closeFileIfIdle() {
	if fl.readers == 0 && fl.done && fl.f != nil {
		fl.f.Close()
		fl.f = nil
	}
}

// signal wakes the readers; a.fillsMu held.
func (fl *fill) signal() {
	close(fl.progress)
	fl.progress = make(chan struct{})
}

// run waits for an encode slot and encodes the layer into a cache entry.
func (fl *fill) run() {
	a := fl.a
	defer a.wg.Done()
	err := fl.encode()
	a.fillsMu.Lock()
	defer a.fillsMu.Unlock()
	delete(a.fills, fl.key) // after the commit: a later pull finds the entry
	fl.done, fl.err = true, err
	fl.signal()
	fl.closeFileIfIdle()
	fl.cancel()
	if err != nil && a.ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		a.log.Error("layer encode failed", "digest", fl.b.Digest, "err", err)
	}
}

func (fl *fill) encode() error {
	a := fl.a
	if err := a.acquireEncode(fl.ctx); err != nil {
		return fmt.Errorf("assembler: layer %s: every reader left before an encode slot was free: %w", fl.b.Digest, err)
	}
	a.fillsMu.Lock()
	fl.started = true
	a.fillsMu.Unlock()
	w, err := a.layers.Create()
	if err != nil {
		a.releaseEncode()
		return err
	}
	defer w.Abort() // a no-op after Commit
	rf, err := os.Open(w.Name())
	if err != nil {
		a.releaseEncode()
		return fmt.Errorf("assembler: layer %s: %w", fl.b.Digest, err)
	}
	a.fillsMu.Lock()
	fl.f = rf
	a.fillsMu.Unlock()
	// Once started the encode runs to the end whoever reads: the
	// assembler's context, not the fill's, bounds it.
	r, err := a.encodeLayer(a.ctx, fl.b, a.releaseEncode)
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, fillChunk)
	for {
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return rerr // a digest mismatch included: its last bytes are not published
		}
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("assembler: layer %s: writing the cache entry: %w", fl.b.Digest, err)
			}
			a.fillsMu.Lock()
			fl.written += int64(n)
			fl.signal()
			a.fillsMu.Unlock()
		}
		if rerr != nil {
			// The verifier said EOF: every byte is right.
			return w.Commit(fl.key)
		}
	}
}

// reader returns a reader of length bytes from off of the fill's layer.
func (fl *fill) reader(ctx context.Context, off, length int64) io.ReadCloser {
	return &fillReader{fl: fl, ctx: ctx, pos: off, end: off + length}
}

// fillReader reads a fill's entry as it grows. It ends, whole layer or
// range, only once the fill has verified the layer: the fill's encode
// checks the digest, not each chunk (verifyDigest), so a range's bytes are
// known good only then. Its bytes flow as they are written; only the end
// waits.
type fillReader struct {
	fl       *fill
	ctx      context.Context
	pos, end int64
	closed   bool
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("assembler: reader closed")
	}
	a := r.fl.a
	for {
		a.fillsMu.Lock()
		written, done, ferr, progress, f := r.fl.written, r.fl.done, r.fl.err, r.fl.progress, r.fl.f
		a.fillsMu.Unlock()
		switch {
		case ferr != nil:
			return 0, ferr
		case r.pos == r.end && done:
			return 0, io.EOF
		case written > r.pos && r.pos < r.end:
			n := int(min(int64(len(p)), written-r.pos, r.end-r.pos))
			// f stays open while this reader is counted.
			n, err := f.ReadAt(p[:n], r.pos)
			r.pos += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		case done:
			return 0, fmt.Errorf("assembler: layer %s: cache entry ended at %d of %d bytes", r.fl.b.Digest, written, r.end)
		}
		select {
		case <-progress:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *fillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.fl.leave()
	}
	return nil
}
