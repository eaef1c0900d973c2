package codec

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// Stats tells how a Find went.
type Stats struct {
	Format     Format
	Candidates int    // candidates left after narrowing by the header
	Trials     int    // candidates tried
	RawBytes   int64  // raw bytes fed to encoders, all trials together
	Matched    int64  // the most leading bytes of the original a trial reproduced
	Note       string // why nothing matched, for logs
}

// ioBuf is the size of Find's read buffers (raw and original).
const ioBuf = 64 << 10

// Result is what FindWithOptions found.
type Result struct {
	Encoding Encoding
	// Checkpoints are those the matching trial recorded
	// (FindOptions.CheckpointSpacing): nil if it recorded none.
	Checkpoints Checkpoints
	// RawDigest is the sha256 of the raw stream as the matching trial
	// read and encoded it, and RawSize its length.
	RawDigest digest.Digest
	RawSize   int64
}

// FindOptions configure FindWithOptions.
type FindOptions struct {
	// CheckpointSpacing makes the trials record checkpoints this many
	// raw bytes apart at least (see WriterOptions), so that the trial that
	// matches is also the encode that makes the blob's Plan.
	CheckpointSpacing int64
}

// Find tries candidate encoders on raw (the decompressed stream;
// rawAgain is called once per trial and must return the same bytes each
// time) and returns the first Encoding whose output equals orig (the
// original compressed blob; origAgain likewise returns it from the start)
// byte for byte. Candidates are narrowed by the original's header and
// tried most used first; a trial stops at the first differing byte.
// ok=false (no error) when nothing matches, including multi-member gzip,
// multi-frame zstd and unknown formats: the caller then stores the blob
// opaque. Errors are I/O errors of the two streams and ctx's.
func Find(ctx context.Context, rawAgain, origAgain func() (io.ReadCloser, error)) (enc Encoding, ok bool, err error) {
	enc, ok, _, err = FindWithStats(ctx, rawAgain, origAgain)
	return enc, ok, err
}

// FindWithStats is Find, also telling how many candidates it tried.
func FindWithStats(ctx context.Context, rawAgain, origAgain func() (io.ReadCloser, error)) (Encoding, bool, Stats, error) {
	res, ok, st, err := FindWithOptions(ctx, rawAgain, origAgain, FindOptions{})
	return res.Encoding, ok, st, err
}

// FindWithOptions is Find with options, telling what the matching trial
// recorded and read.
func FindWithOptions(ctx context.Context, rawAgain, origAgain func() (io.ReadCloser, error), o FindOptions) (Result, bool, Stats, error) {
	var st Stats
	br := bufio.NewReaderSize(nil, ioBuf)
	cands, err := candidates(origAgain, br, &st)
	if err != nil || len(cands) == 0 {
		return Result{}, false, st, err
	}
	buf := make([]byte, ioBuf)
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return Result{}, false, st, err
		}
		st.Trials++
		res, ok, err := trial(ctx, c, rawAgain, origAgain, br, buf, o, &st)
		if err != nil {
			return Result{}, false, st, fmt.Errorf("codec: trying %s: %w", c, err)
		}
		if ok {
			return res, true, st, nil
		}
	}
	st.Note = fmt.Sprintf("none of %d candidates reproduces the blob", len(cands))
	return Result{}, false, st, nil
}

// candidates reads the original's header and lists what to try.
func candidates(origAgain func() (io.ReadCloser, error), br *bufio.Reader, st *Stats) ([]Encoding, error) {
	orig, err := origAgain()
	if err != nil {
		return nil, fmt.Errorf("codec: opening original: %w", err)
	}
	defer orig.Close()
	br.Reset(orig)
	prefix, err := br.Peek(len(zstdMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("codec: reading original: %w", err)
	}
	st.Format = Detect(prefix)
	var cands []Encoding
	switch st.Format {
	case FormatGzip:
		var h GzipHeader
		if h, err = readGzipHeader(br); err == nil {
			cands = gzipCandidates(h)
		}
	case FormatZstd:
		var f zstdFrame
		if f, err = readZstdFrameHeader(br); err == nil {
			cands = zstdCandidates(f)
		}
	default:
		st.Note = "not gzip or zstd"
		return nil, nil
	}
	switch {
	case errors.Is(err, errGzipHeader), errors.Is(err, errZstdHeader), errors.Is(err, io.ErrUnexpectedEOF):
		st.Note = err.Error()
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("codec: reading original: %w", err)
	case len(cands) == 0:
		st.Note = "no encoder of this build writes such a header"
	}
	st.Candidates = len(cands)
	return cands, nil
}

// trial encodes raw with enc into a comparer reading orig. It stops
// feeding the encoder once the comparer has seen a difference.
func trial(ctx context.Context, enc Encoding, rawAgain, origAgain func() (io.ReadCloser, error),
	br *bufio.Reader, buf []byte, o FindOptions, st *Stats) (Result, bool, error) {
	orig, err := origAgain()
	if err != nil {
		return Result{}, false, fmt.Errorf("opening original: %w", err)
	}
	defer orig.Close()
	raw, err := rawAgain()
	if err != nil {
		return Result{}, false, fmt.Errorf("opening raw: %w", err)
	}
	defer raw.Close()
	br.Reset(orig)
	cmp := &comparer{orig: br}
	w, err := NewWriterOptions(cmp, enc, WriterOptions{CheckpointSpacing: o.CheckpointSpacing})
	if err != nil {
		return Result{}, false, err
	}
	defer func() { st.Matched = max(st.Matched, cmp.off) }() // after w.Close
	sum := sha256.New()
	var size int64
	for !cmp.stopped() {
		if err := ctx.Err(); err != nil {
			w.Close() // releases the encoder's goroutines
			return Result{}, false, err
		}
		n, rerr := raw.Read(buf)
		if n > 0 {
			st.RawBytes += int64(n)
			size += int64(n)
			sum.Write(buf[:n])
			if _, err := w.Write(buf[:n]); err != nil {
				w.Close()
				return Result{}, false, fmt.Errorf("encoding: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.Close()
			return Result{}, false, fmt.Errorf("reading raw: %w", rerr)
		}
	}
	ok, err := cmp.result(w.Close())
	if !ok || err != nil {
		return Result{}, ok, err
	}
	return Result{Encoding: enc, Checkpoints: w.Checkpoints(), RawSize: size,
		RawDigest: digest.NewDigestFromBytes(digest.SHA256, sum.Sum(nil))}, true, nil
}
