package zlib

import (
	"context"
	"fmt"
	"io"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/zseg"
)

// Splicer joins the outputs of resumed segments, which meet at bit
// offsets, into one stream (see Resume).
type Splicer = zseg.Splicer

// NewSplicer returns a Splicer writing to w.
func NewSplicer(w io.Writer) *Splicer { return zseg.NewSplicer(w) }

// copyChunk is how much input a segment reads at a time.
const copyChunk = 256 << 10

// EncodeParallel writes to dst the raw deflate stream of the size bytes
// of src at level, the same bytes a single Writer writes, by encoding the
// segments between the checkpoints cps (recorded by an earlier encode of
// the same input at the same level, in input order) on up to workers
// goroutines and splicing them in order. Memory is bounded by the
// checkpoint spacing times the number of workers.
func EncodeParallel(ctx context.Context, dst io.Writer, src io.ReaderAt, size int64, level int, cps []Checkpoint, workers int) error {
	if level < 1 || level > 9 {
		return fmt.Errorf("%w: %d", ErrLevel, level)
	}
	for i := range cps {
		if cps[i].Level != level || cps[i].In > size || (i > 0 && cps[i].In <= cps[i-1].In) {
			return fmt.Errorf("zlib: checkpoint %d (input offset %d, level %d) does not fit a %d-byte level-%d encode", i, cps[i].In, cps[i].Level, size, level)
		}
	}
	encode := func(ctx context.Context, k int, w io.Writer) (byte, int, error) {
		var start, stop *Checkpoint
		if k > 0 {
			start = &cps[k-1]
		}
		if k < len(cps) {
			stop = &cps[k]
		}
		return EncodeSegment(ctx, w, src, size, level, start, stop)
	}
	return zseg.Run(ctx, dst, len(cps)+1, workers, encode)
}

// SegmentInput is the input range [from, to) that EncodeSegment reads
// for the segment between start and stop: the history before start
// (from its HistoryStart; 0 for the stream's start) up to the lookahead
// the encoder had read when it cut the block at stop (size for the last
// segment).
func SegmentInput(start, stop *Checkpoint, size int64) (from, to int64) {
	if start != nil {
		from = start.HistoryStart()
	}
	to = size
	if stop != nil {
		to = min(size, stop.In-int64(stop.Window)+int64(stop.DataEnd))
	}
	return from, to
}

// EncodeSegment writes to w the output of one segment of an encode of
// the size bytes of src at level: from checkpoint start (nil: the
// stream's start) to checkpoint stop (nil: the stream's end), reading src
// only within SegmentInput. Its first byte carries the bits from
// start.Out rounded down, those before start.Out zero; the last, partial
// byte of a segment that ends at stop is not written but returned as
// tail with its tailBits low bits set (see Splicer).
func EncodeSegment(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, level int, start, stop *Checkpoint) (byte, int, error) {
	var z *Writer
	from := int64(0)
	if start == nil {
		var err error
		if z, err = NewWriter(w, level); err != nil {
			return 0, 0, err
		}
		if stop != nil {
			z.s.stop = stop.In
		}
	} else {
		from = start.In
		hist := make([]byte, start.In-start.HistoryStart())
		if _, err := src.ReadAt(hist, start.HistoryStart()); err != nil {
			return 0, 0, fmt.Errorf("zlib: reading history: %w", err)
		}
		var err error
		if z, err = Resume(w, start, hist, stop); err != nil {
			return 0, 0, err
		}
	}
	// The encoder had read up to the end of its window's data when it
	// cut the block at stop: give it exactly that.
	_, end := SegmentInput(start, stop, size)
	buf := make([]byte, copyChunk)
	for off := from; off < end; {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		n := min(int64(len(buf)), end-off)
		if _, err := src.ReadAt(buf[:n], off); err != nil {
			return 0, 0, fmt.Errorf("zlib: reading input: %w", err)
		}
		if _, err := z.Write(buf[:n]); err != nil {
			return 0, 0, err
		}
		off += n
	}
	if err := z.Close(); err != nil {
		return 0, 0, err
	}
	if stop != nil && z.OutputBits() != stop.Out {
		return 0, 0, fmt.Errorf("%w: segment ends at bit %d, checkpoint says %d", ErrMismatch, z.OutputBits(), stop.Out)
	}
	b, n := z.Tail()
	return b, n, nil
}
