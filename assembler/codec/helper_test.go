package codec

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chunkyard/chunkyard/assembler/codec/helpers"
	"github.com/klauspost/compress/zstd"
)

const helperClass = "klauspost/compress v1.20.3"

// useHelpers builds and loads the real helpers for one test.
func useHelpers(t *testing.T) {
	t.Helper()
	dir, err := helpers.BuildShared()
	if err != nil {
		t.Fatal(err)
	}
	resetHelpers()
	t.Cleanup(resetHelpers)
	added, err := LoadHelpers(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"klauspost-gzip " + helperClass,
		"klauspost-pgzip klauspost/pgzip v1.2.6 " + helperClass,
		"klauspost-zstd " + helperClass,
	}
	for _, w := range want {
		if !slices.ContainsFunc(added, func(a string) bool { return strings.HasPrefix(a, w) }) {
			t.Fatalf("helpers added %q, want %q among them", added, w)
		}
	}
}

// TestHelperReproducesOtherZstdClass: with the v1.20.3 helper loaded, the
// blob TestFindOtherZstdClass shows this build cannot write is found, and
// re-encoded byte for byte through the helper.
func TestHelperReproducesOtherZstdClass(t *testing.T) {
	useHelpers(t)
	raw := genTar(t, 8, 400<<10)
	blob, err := os.ReadFile("testdata/zstd-default-v1.20.3.zst")
	if err != nil {
		t.Fatal(err)
	}
	enc, ok, st := find(t, raw, blob)
	t.Logf("%s %+v", enc, st)
	if !ok || enc.Version != helperClass || enc.Level != int(zstd.SpeedDefault) {
		t.Fatalf("Find: %s ok=%v, want default level of %s", enc, ok, helperClass)
	}
	if got := encode(t, enc, raw, 1000, 70000); !bytes.Equal(got, blob) {
		t.Fatal("the helper's re-encode differs from the blob")
	}
}

// TestHelperClasses: each helper encoder's output decodes to its input and
// Find gives it back, by the helper's class or, where both classes write
// the same bytes, by this build's.
func TestHelperClasses(t *testing.T) {
	useHelpers(t)
	raw := genTar(t, 5, 3<<20)
	for _, e := range []Encoding{
		{Format: FormatGzip, Encoder: EncoderKlauspostGzip, Level: 6},
		{Format: FormatGzip, Encoder: EncoderKlauspostGzip, Level: 1},
		{Format: FormatGzip, Encoder: EncoderPgzip, Level: 5, BlockSize: pgzipDefaultBlockSize},
		{Format: FormatZstd, Encoder: EncoderKlauspostZstd, Level: int(zstd.SpeedFastest)},
		{Format: FormatZstd, Encoder: EncoderKlauspostZstd, Level: int(zstd.SpeedBetterCompression)},
	} {
		e.Version = helperClass
		if e.Encoder == EncoderPgzip {
			e.Version = "klauspost/pgzip v1.2.6 " + helperClass
		}
		t.Run(e.String(), func(t *testing.T) {
			blob := encode(t, e, raw, 4096, 1<<20)
			if err := decodesTo(e.Format, blob, raw); err != nil {
				t.Fatal(err)
			}
			own := mkEnc(t, e.Encoder, e.Level)
			own.Format, own.BlockSize = e.Format, e.BlockSize
			same := bytes.Equal(encode(t, own, raw), blob)
			got, ok, st := find(t, raw, blob)
			t.Logf("found %s in %d trials; same bytes as this build: %v", got, st.Trials, same)
			if !ok || got.Level != e.Level || (got.Version != e.Version && !same) {
				t.Fatalf("Find: %s ok=%v", got, ok)
			}
			if !bytes.Equal(encode(t, got, raw), blob) {
				t.Fatal("re-encode differs")
			}
		})
	}
}

func decodesTo(f Format, blob, raw []byte) error {
	var r io.Reader
	if f == FormatGzip {
		gz, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			return err
		}
		r = gz
	} else {
		zr, err := zstd.NewReader(bytes.NewReader(blob))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	got, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, raw) {
		return errors.New("decodes to other bytes")
	}
	return nil
}

// fakeHelper installs a shell-script helper in a fresh directory.
func fakeHelper(t *testing.T, script string) string {
	t.Helper()
	resetHelpers()
	t.Cleanup(resetHelpers)
	dir := t.TempDir()
	p := filepath.Join(dir, HelperPrefix+"fake")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHelperFailures: a helper that fails says why, through NewWriter's
// Write or Close; a destination that fails stops the helper and its error
// is what the caller sees; neither hangs.
func TestHelperFailures(t *testing.T) {
	zs := Encoding{Format: FormatZstd, Encoder: EncoderKlauspostZstd, Level: 2, Version: "fake 1"}
	t.Run("helper-fails", func(t *testing.T) {
		dir := fakeHelper(t, `case $1 in
version) echo '{"Protocol":1,"Classes":{"klauspost-zstd":"fake 1"}}' ;;
encode) head -c 100 >/dev/null; echo "out of cheese" >&2; exit 1 ;;
esac`)
		if _, err := LoadHelpers(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(io.Discard, zs)
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(make([]byte, 8<<20))
		cerr := w.Close()
		if err := errors.Join(werr, cerr); err == nil || !strings.Contains(err.Error(), "out of cheese") {
			t.Fatalf("error %v, want the helper's stderr", err)
		}
	})
	t.Run("destination-fails", func(t *testing.T) {
		dir := fakeHelper(t, `case $1 in
version) echo '{"Protocol":1,"Classes":{"klauspost-zstd":"fake 1"}}' ;;
encode) cat ;;
esac`)
		if _, err := LoadHelpers(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(&failWriter{n: 1 << 20}, zs)
		if err != nil {
			t.Fatal(err)
		}
		var werr error
		for i := 0; i < 100 && werr == nil; i++ {
			_, werr = w.Write(make([]byte, 1<<20))
		}
		if err := errors.Join(werr, w.Close()); err == nil || !strings.Contains(err.Error(), "client went away") {
			t.Fatalf("error %v, want the destination's", err)
		}
	})
	t.Run("wrong-protocol", func(t *testing.T) {
		dir := fakeHelper(t, `echo '{"Protocol":2,"Classes":{}}'`)
		if _, err := LoadHelpers(context.Background(), dir); err == nil {
			t.Fatal("a helper of another protocol was loaded")
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		resetHelpers()
		if _, err := NewWriter(io.Discard, zs); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error %v, want ErrUnavailable", err)
		}
	})
}
