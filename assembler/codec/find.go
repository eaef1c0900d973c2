package codec

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	var st Stats
	br := bufio.NewReaderSize(nil, ioBuf)
	cands, err := candidates(origAgain, br, &st)
	if err != nil || len(cands) == 0 {
		return Encoding{}, false, st, err
	}
	buf := make([]byte, ioBuf)
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return Encoding{}, false, st, err
		}
		st.Trials++
		ok, err := trial(ctx, c, rawAgain, origAgain, br, buf, &st)
		if err != nil {
			return Encoding{}, false, st, fmt.Errorf("codec: trying %s: %w", c, err)
		}
		if ok {
			return c, true, st, nil
		}
	}
	st.Note = fmt.Sprintf("none of %d candidates reproduces the blob", len(cands))
	return Encoding{}, false, st, nil
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
	br *bufio.Reader, buf []byte, st *Stats) (bool, error) {
	orig, err := origAgain()
	if err != nil {
		return false, fmt.Errorf("opening original: %w", err)
	}
	defer orig.Close()
	raw, err := rawAgain()
	if err != nil {
		return false, fmt.Errorf("opening raw: %w", err)
	}
	defer raw.Close()
	br.Reset(orig)
	cmp := &comparer{orig: br}
	w, err := NewWriter(cmp, enc)
	if err != nil {
		return false, err
	}
	defer func() { st.Matched = max(st.Matched, cmp.off) }() // after w.Close
	for !cmp.stopped() {
		if err := ctx.Err(); err != nil {
			w.Close() // releases the encoder's goroutines
			return false, err
		}
		n, rerr := raw.Read(buf)
		if n > 0 {
			st.RawBytes += int64(n)
			if _, err := w.Write(buf[:n]); err != nil {
				w.Close()
				return false, fmt.Errorf("encoding: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			w.Close()
			return false, fmt.Errorf("reading raw: %w", rerr)
		}
	}
	return cmp.result(w.Close())
}
