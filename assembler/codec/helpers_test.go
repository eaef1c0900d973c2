package codec

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// rng is splitmix64: a PRNG defined here so test inputs never change with
// the standard library.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

const vocabulary = "the of and to in is for on that with as by at from this be are or it " +
	"package import func return if else for range var const type struct interface map chan " +
	"go defer select case switch default break continue nil true false error string int byte " +
	"layer image registry chunk pack index manifest digest blob tag repo push pull gzip zstd " +
	"#include <stdio.h> static void main(int argc, char **argv) { printf(\"%s\\n\", argv[0]); } " +
	"/usr/lib/x86_64-linux-gnu /etc/apt/sources.list Description: Version: 1.2.3-4 Depends: libc6"

// genTar returns a deterministic tar of about size bytes: text, code-like
// binary, incompressible, zero and repeated files with fixed metadata.
func genTar(tb testing.TB, seed uint64, size int) []byte {
	tb.Helper()
	r := rng(seed)
	words := strings.Fields(vocabulary)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var prev [][]byte
	for i := 0; buf.Len() < size; i++ {
		var body []byte
		switch k := r.intn(20); {
		case k < 11: // text
			n := 200 + r.intn(96<<10)
			var b strings.Builder
			for b.Len() < n {
				b.WriteString(words[r.intn(len(words))])
				if r.intn(12) == 0 {
					b.WriteByte('\n')
				} else {
					b.WriteByte(' ')
				}
			}
			body = []byte(b.String())
		case k < 15: // code-like: runs of random bytes and repeated snippets
			n := 1024 + r.intn(300<<10)
			for len(body) < n {
				if r.intn(3) == 0 {
					for j := r.intn(64); j > 0; j-- {
						body = append(body, byte(r.next()))
					}
				} else {
					w := words[r.intn(len(words))]
					body = append(body, w...)
					body = append(body, byte(r.intn(8)))
				}
			}
		case k < 16: // incompressible
			body = make([]byte, 4096+r.intn(128<<10))
			for j := range body {
				body[j] = byte(r.next())
			}
		case k < 17: // sparse
			body = make([]byte, 512+r.intn(64<<10))
		default: // a copy of an earlier file
			if len(prev) > 0 {
				body = prev[r.intn(len(prev))]
			}
		}
		prev = append(prev, body)
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     fmt.Sprintf("dir%02d/file%05d.dat", i%17, i),
			Mode:     0o644,
			Size:     int64(len(body)),
			ModTime:  time.Unix(1577836800, 0),
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// mkEnc is an Encoding with this build's version and default parameters.
func mkEnc(tb testing.TB, encoder string, level int) Encoding {
	tb.Helper()
	v, ok := versionOf(encoder)
	if !ok {
		tb.Fatalf("%s unavailable", encoder)
	}
	e := Encoding{Format: FormatGzip, Encoder: encoder, Version: v, Level: level}
	switch encoder {
	case EncoderPgzip:
		e.BlockSize = pgzipDefaultBlockSize
	case EncoderKlauspostZstd:
		e.Format = FormatZstd
	}
	return e
}

// encode compresses raw with enc, writing it in chunks of the given sizes
// (cycled; nil: one write).
func encode(tb testing.TB, enc Encoding, raw []byte, chunks ...int) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, enc)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; len(raw) > 0; i++ {
		n := len(raw)
		if len(chunks) > 0 {
			n = min(n, chunks[i%len(chunks)])
		}
		if _, err := w.Write(raw[:n]); err != nil {
			tb.Fatal(err)
		}
		raw = raw[n:]
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// opener returns b's reader each call, as Find wants.
func opener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func find(tb testing.TB, raw, orig []byte) (Encoding, bool, Stats) {
	tb.Helper()
	enc, ok, st, err := FindWithStats(context.Background(), opener(raw), opener(orig))
	if err != nil {
		tb.Fatal(err)
	}
	return enc, ok, st
}
