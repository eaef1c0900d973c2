package codec

import (
	"bufio"
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Format
	}{
		{"\x1f\x8b\x08\x00", FormatGzip},
		{"\x1f\x8b\x07\x00", FormatNone}, // not deflate
		{"\x28\xb5\x2f\xfd\x04", FormatZstd},
		{"\x28\xb5\x2f", FormatNone},
		{"\x50\x2a\x4d\x18", FormatNone}, // zstd skippable frame
		{"ustar", FormatNone},
		{"", FormatNone},
	} {
		if got := Detect([]byte(c.in)); got != c.want {
			t.Errorf("Detect(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestNewWriterRefuses: an Encoding of another output class, or a
// malformed one, is refused before a byte is written.
func TestNewWriterRefuses(t *testing.T) {
	mod := func(e Encoding, f func(*Encoding)) Encoding { f(&e); return e }
	std6 := mkEnc(t, EncoderStdlib, 6)
	pg := mkEnc(t, EncoderPgzip, 5)
	zs := mkEnc(t, EncoderKlauspostZstd, 2)
	for name, c := range map[string]struct {
		enc  Encoding
		want error
	}{
		"go1.27":          {mod(std6, func(e *Encoding) { e.Version = "go1.27" }), ErrUnavailable},
		"compress-1.20.3": {mod(zs, func(e *Encoding) { e.Version = "klauspost/compress v1.20.3" }), ErrUnavailable},
		"pgzip-1.3.0": {mod(pg, func(e *Encoding) {
			e.Version = "klauspost/pgzip v1.3.0 klauspost/compress v1.20.3"
		}), ErrUnavailable},
		"unknown":         {mod(std6, func(e *Encoding) { e.Encoder = "gnu-gzip" }), ErrUnavailable},
		"level-10":        {mod(std6, func(e *Encoding) { e.Level = 10 }), ErrInvalid},
		"level-3":         {mod(std6, func(e *Encoding) { e.Level = -3 }), ErrInvalid},
		"zstd-level-5":    {mod(zs, func(e *Encoding) { e.Level = 5 }), ErrInvalid},
		"zstd-as-gzip":    {mod(zs, func(e *Encoding) { e.Format = FormatGzip }), ErrInvalid},
		"gzip-as-zstd":    {mod(std6, func(e *Encoding) { e.Format = FormatZstd }), ErrInvalid},
		"pgzip-no-block":  {mod(pg, func(e *Encoding) { e.BlockSize = 0 }), ErrInvalid},
		"pgzip-tiny":      {mod(pg, func(e *Encoding) { e.BlockSize = 16384 }), ErrInvalid},
		"pgzip-huge":      {mod(pg, func(e *Encoding) { e.BlockSize = 1 << 30 }), ErrInvalid},
		"stdlib-block":    {mod(std6, func(e *Encoding) { e.BlockSize = 1 << 20 }), ErrInvalid},
		"zstd-block":      {mod(zs, func(e *Encoding) { e.BlockSize = 1 << 20 }), ErrInvalid},
		"zstd-header":     {mod(zs, func(e *Encoding) { e.Gzip = &GzipHeader{} }), ErrInvalid},
		"gzip-zstd":       {mod(std6, func(e *Encoding) { e.Zstd = &ZstdParams{} }), ErrInvalid},
		"zstd-window":     {mod(zs, func(e *Encoding) { e.Zstd = &ZstdParams{WindowSize: 1000} }), ErrInvalid},
		"zstd-neg-size":   {mod(zs, func(e *Encoding) { e.Zstd = &ZstdParams{ContentSize: -1} }), ErrInvalid},
		"reserved-flag":   {mod(std6, func(e *Encoding) { e.Gzip = &GzipHeader{Flags: 0x20} }), ErrInvalid},
		"name-no-flag":    {mod(std6, func(e *Encoding) { e.Gzip = &GzipHeader{Name: "x"} }), ErrInvalid},
		"name-not-latin1": {mod(std6, func(e *Encoding) { e.Gzip = &GzipHeader{Flags: flagName, Name: "\u20ac"} }), ErrInvalid},
		"name-nul":        {mod(std6, func(e *Encoding) { e.Gzip = &GzipHeader{Flags: flagName, Name: "a\x00b"} }), ErrInvalid},
		"extra-too-long":  {mod(std6, func(e *Encoding) { e.Gzip = &GzipHeader{Flags: flagExtra, Extra: make([]byte, 1<<16)} }), ErrInvalid},
	} {
		var out bytes.Buffer
		if _, err := NewWriter(&out, c.enc); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		} else if out.Len() != 0 {
			t.Errorf("%s: wrote %d bytes", name, out.Len())
		}
	}
}

// TestGzipHeaderRoundTrip: a header read back from appendTo's bytes is
// the same header, and compress/gzip reads the fields as written.
func TestGzipHeaderRoundTrip(t *testing.T) {
	h := GzipHeader{Flags: flagText | flagHCRC | flagExtra | flagName | flagComment,
		ModTime: 1234567890, XFL: 2, OS: 3, Extra: []byte("ab\x02\x00xy"),
		Name: "caf\u00e9-\u00ff.tar", Comment: "\u00a9 2026"}
	b, err := h.appendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readGzipHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Extra, h.Extra) || got.Name != h.Name || got.Comment != h.Comment ||
		got.Flags != h.Flags || got.ModTime != h.ModTime || got.XFL != h.XFL || got.OS != h.OS {
		t.Errorf("read back %+v, want %+v", got, h)
	}
	enc := mkEnc(t, EncoderStdlib, 9)
	enc.Gzip = &h
	zr, err := stdgzip.NewReader(bytes.NewReader(encode(t, enc, []byte("payload"))))
	if err != nil {
		t.Fatal(err) // compress/gzip checks FHCRC
	}
	if zr.Name != h.Name || zr.Comment != h.Comment || !bytes.Equal(zr.Extra, h.Extra) || zr.OS != h.OS {
		t.Errorf("compress/gzip reads %+v", zr.Header)
	}
	if body, err := io.ReadAll(zr); err != nil || string(body) != "payload" {
		t.Errorf("body %q, %v", body, err)
	}
}

// TestPgzipConcurrencyIndependent: the number of pgzip blocks in flight
// does not shape the output, only the block size does.
func TestPgzipConcurrencyIndependent(t *testing.T) {
	raw := genTar(t, 6, 5<<19+12345)
	var first []byte
	for _, blocks := range []int{1, 2, 3, 8} {
		out := libEncode(t, func(w io.Writer) (io.WriteCloser, error) {
			z := pgzip.NewWriter(w)
			return z, z.SetConcurrency(1<<20, blocks)
		}, raw)
		if first == nil {
			first = out
		} else if !bytes.Equal(out, first) {
			t.Errorf("%d blocks in flight: other bytes", blocks)
		}
	}
	if !bytes.Equal(encode(t, mkEnc(t, EncoderPgzip, 5), raw), first) {
		t.Error("NewWriter differs from pgzip.NewWriter")
	}
}

// TestZstdConcurrencyIndependent: likewise for klauspost zstd streams.
func TestZstdConcurrencyIndependent(t *testing.T) {
	raw := genTar(t, 7, 3<<19)
	for l := zstd.SpeedFastest; l <= zstd.SpeedBetterCompression; l++ {
		var first []byte
		for _, c := range []int{1, 2, 4} {
			out := libEncode(t, func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(c))
			}, raw)
			if first == nil {
				first = out
			} else if !bytes.Equal(out, first) {
				t.Errorf("%s, concurrency %d: other bytes", l, c)
			}
		}
		if !bytes.Equal(encode(t, mkEnc(t, EncoderKlauspostZstd, int(l)), raw), first) {
			t.Errorf("%s: NewWriter differs from zstd.NewWriter", l)
		}
	}
}

// TestEmptyInput: encoders agree with their libraries on an empty stream
// and Find reproduces it.
func TestEmptyInput(t *testing.T) {
	for _, c := range encCases(t, 0) {
		if c.lib == nil || c.enc.Zstd != nil && c.enc.Zstd.ContentSize > 0 {
			continue
		}
		blob := encode(t, c.enc, nil)
		if lib := libEncode(t, c.lib, nil); !bytes.Equal(lib, blob) {
			t.Errorf("%s: %x, library %x", c.name, blob, lib)
		}
		if len(blob) == 0 {
			continue // klauspost zstd writes nothing for nothing
		}
		if _, ok, st := find(t, nil, blob); !ok && !c.unfound {
			t.Errorf("%s: no match (%+v)", c.name, st)
		}
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("client went away")
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriterFailure: an error of the destination (a pull whose client
// went away) comes back from Write or Close, and leaves no goroutine.
func TestWriterFailure(t *testing.T) {
	raw := genTar(t, 11, 5<<19)
	before := runtime.NumGoroutine()
	for _, e := range []Encoding{mkEnc(t, EncoderStdlib, 6), mkEnc(t, EncoderKlauspostGzip, 5),
		mkEnc(t, EncoderPgzip, 5), mkEnc(t, EncoderKlauspostZstd, 2)} {
		for _, n := range []int{0, 5, 100 << 10} {
			w, err := NewWriter(&failWriter{n: n}, e)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := io.Copy(w, struct{ io.Reader }{bytes.NewReader(raw)})
			if cerr := w.Close(); werr == nil && cerr == nil {
				t.Errorf("%s, failing after %d bytes: no error", e, n)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left behind", n-before)
	}
}
