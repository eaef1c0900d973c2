package zlib

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// PigzOptions describe how pigz (2.x, on zlib 1.2.6 or later) cut and
// flushed its deflate stream.
type PigzOptions struct {
	// Level is pigz's -1..-9 (default 6).
	Level int
	// BlockSize is pigz's -b in bytes (default 128 KiB).
	BlockSize int
	// Single is pigz running one compression thread (-p 1, or a host with
	// one core): one deflate stream across all blocks, flushed at each
	// block's end. Otherwise each block is compressed on its own, primed
	// with the 32 KiB of input before it, which gives other bytes at
	// levels 1..3 (levels 4..9 write the same in both modes).
	Single bool
	// Independent is pigz -i: no dictionary, and a full flush after each
	// block.
	Independent bool
	// Workers is how many blocks are compressed at once when not Single
	// (the output does not depend on it; default 1).
	Workers int
}

const pigzDict = 32 << 10

// EncodePigz writes to dst the raw deflate stream pigz writes for the
// input read from src (the gzip header and trailer are the caller's).
// Memory is bounded by the block size times the number of workers.
func EncodePigz(ctx context.Context, dst io.Writer, src io.Reader, o PigzOptions) error {
	if o.Level == 0 {
		o.Level = 6
	}
	if o.Level < 1 || o.Level > 9 {
		return fmt.Errorf("%w: %d", ErrLevel, o.Level)
	}
	if o.BlockSize == 0 {
		o.BlockSize = 128 << 10
	}
	if o.BlockSize < pigzDict {
		return fmt.Errorf("zlib: pigz block size %d below 32 KiB", o.BlockSize)
	}
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.Single {
		return pigzSingle(ctx, dst, src, o)
	}
	return pigzParallel(ctx, dst, src, o)
}

// readBlock reads up to n bytes; it returns fewer only at the end.
func readBlock(src io.Reader, buf []byte) (int, error) {
	n, err := io.ReadFull(src, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("zlib: reading input: %w", err)
	}
	return n, err
}

// pigzEndBlock ends a block that more input follows, as pigz does: a
// Z_BLOCK flush, then enough to reach a byte boundary (an empty stored
// block if the pending bit count is odd, else empty fixed blocks), and
// with -i an empty stored block more and a fresh history.
func pigzEndBlock(z *Writer, setdict bool) error {
	if err := z.FlushMode(BlockFlush); err != nil {
		return err
	}
	bits := z.PendingBits()
	if bits&1 != 0 || !setdict {
		if err := z.FlushMode(SyncFlush); err != nil {
			return err
		}
	} else if bits&7 != 0 {
		for z.PendingBits()&7 != 0 {
			if err := z.Prime(10, 2); err != nil {
				return err
			}
		}
		if err := z.drain(); err != nil {
			return err
		}
	}
	if !setdict {
		return z.FlushMode(FullFlush)
	}
	return nil
}

func pigzSingle(ctx context.Context, dst io.Writer, src io.Reader, o PigzOptions) error {
	z, err := NewWriter(dst, o.Level)
	if err != nil {
		return err
	}
	cur := make([]byte, o.BlockSize)
	next := make([]byte, o.BlockSize)
	n, err := readBlock(src, cur)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := readBlock(src, next)
		if err != nil {
			return err
		}
		if _, err := z.Write(cur[:n]); err != nil {
			return err
		}
		if m == 0 {
			return z.Close()
		}
		if err := pigzEndBlock(z, !o.Independent); err != nil {
			return err
		}
		if o.Independent {
			// pigz -i -p 1 resets the stream when the history would
			// reach past one block; after a full flush that changes
			// nothing but the window's phase.
			if err := z.Reset(dst, o.Level); err != nil {
				return err
			}
		}
		cur, next, n = next, cur, m
	}
}

// pigzJob is one block of the parallel mode.
type pigzJob struct {
	in   []byte
	dict []byte
	last bool
	out  bytes.Buffer
	err  error
	done chan struct{}
}

func pigzParallel(parent context.Context, dst io.Writer, src io.Reader, o PigzOptions) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	jobs := make(chan *pigzJob)
	order := make(chan *pigzJob, 2*o.Workers)
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			z, _ := NewWriter(io.Discard, o.Level)
			for j := range jobs {
				j.err = pigzBlock(z, j, o)
				close(j.done)
			}
		}()
	}
	var readErr error
	go func() {
		defer close(order)
		defer close(jobs)
		var dict []byte
		cur := make([]byte, o.BlockSize)
		n, err := readBlock(src, cur)
		if err != nil {
			readErr = err
			return
		}
		for {
			next := make([]byte, o.BlockSize)
			m, err := readBlock(src, next)
			if err != nil {
				readErr = err
				return
			}
			j := &pigzJob{in: cur[:n], dict: dict, last: m == 0, done: make(chan struct{})}
			if !o.Independent {
				d := append(append([]byte(nil), dict...), cur[:n]...)
				dict = d[max(0, len(d)-pigzDict):]
			}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
			if m == 0 {
				return
			}
			cur, n = next, m
		}
	}()
	var err error
	for j := range order {
		select {
		case <-j.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil && j.err != nil {
			err = j.err
		}
		if err == nil {
			if _, werr := dst.Write(j.out.Bytes()); werr != nil {
				err = fmt.Errorf("zlib: writing output: %w", werr)
			}
		}
		if err != nil {
			cancel()
			break
		}
	}
	cancel()
	for range order {
	}
	wg.Wait()
	if err == nil {
		err = readErr
	}
	if err == nil {
		err = parent.Err()
	}
	return err
}

// pigzBlock compresses one block of the parallel mode on z (deflateReset,
// deflateParams, deflateSetDictionary, deflate).
func pigzBlock(z *Writer, j *pigzJob, o PigzOptions) error {
	if err := z.Reset(&j.out, o.Level); err != nil {
		return err
	}
	if len(j.dict) > 0 {
		if err := z.SetDictionary(j.dict); err != nil {
			return err
		}
	}
	if _, err := z.Write(j.in); err != nil {
		return err
	}
	if j.last {
		return z.Close()
	}
	return pigzEndBlock(z, !o.Independent)
}
