package codec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestFindForeignEncoders: output of encoders and settings nothing here
// reproduces (reference zstd; zlib with another memLevel or strategy) is
// not claimed, and Find says so after cheap trials.
func TestFindForeignEncoders(t *testing.T) {
	raw := genTar(t, 3, 3<<19)
	py := "import sys, zlib\nd = sys.stdin.buffer.read()\n"
	for _, c := range []struct {
		name      string
		args      []string
		maxTrials int
	}{
		{"zstd-3", []string{"zstd", "-3", "-q", "-c"}, 5},
		{"zstd-19", []string{"zstd", "-19", "-q", "-c"}, 5},
		{"zlib-memlevel9", []string{"python3", "-c", py + "c = zlib.compressobj(6, zlib.DEFLATED, 31, 9)\nsys.stdout.buffer.write(c.compress(d) + c.flush())"}, 40},
		{"zlib-filtered", []string{"python3", "-c", py + "c = zlib.compressobj(9, zlib.DEFLATED, 31, 8, zlib.Z_FILTERED)\nsys.stdout.buffer.write(c.compress(d) + c.flush())"}, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath(c.args[0]); err != nil {
				t.Skipf("no %s binary", c.args[0])
			}
			cmd := exec.Command(c.args[0], c.args[1:]...)
			cmd.Stdin = bytes.NewReader(raw)
			blob, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			enc, ok, st := find(t, raw, blob)
			t.Logf("%+v", st)
			if ok {
				t.Fatalf("Find claims %s reproduces %v", enc, c.args)
			}
			// Every trial stops within a block or two of raw input.
			if st.Trials > c.maxTrials || st.RawBytes > int64(st.Trials)*1<<20 {
				t.Errorf("too costly a miss: %d trials, %d raw bytes", st.Trials, st.RawBytes)
			}
		})
	}
}

// TestFindDamaged: truncated, corrupt, padded, multi-member, multi-frame
// and unrecognised blobs give ok=false without an error or a panic.
func TestFindDamaged(t *testing.T) {
	raw := genTar(t, 4, 100<<10)
	gz := encode(t, mkEnc(t, EncoderStdlib, 6), raw)
	zs := encode(t, mkEnc(t, EncoderKlauspostZstd, int(zstd.SpeedDefault)), raw)
	half := len(raw) / 2
	twoMembers := append(encode(t, mkEnc(t, EncoderStdlib, 6), raw[:half]),
		encode(t, mkEnc(t, EncoderStdlib, 6), raw[half:])...)
	twoFrames := append(encode(t, mkEnc(t, EncoderKlauspostZstd, 2), raw[:half]),
		encode(t, mkEnc(t, EncoderKlauspostZstd, 2), raw[half:])...)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x40
		return c
	}
	dict := bytes.Clone(zs)
	dict[4] |= 1 // a dictionary ID byte follows: shifts the header
	skippable := append([]byte{0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}, zs...)
	for name, blob := range map[string][]byte{
		"empty":            nil,
		"gzip-magic-only":  gz[:3],
		"gzip-header-only": gz[:10],
		"gzip-half":        gz[:len(gz)/2],
		"gzip-no-trailer":  gz[:len(gz)-8],
		"gzip-bad-crc":     flip(gz, len(gz)-6),
		"gzip-corrupt":     flip(gz, len(gz)/2),
		"gzip-reserved":    flip(gz, 3), // FLG 0x40
		"gzip-padded":      append(bytes.Clone(gz), 0, 0, 0, 0),
		"gzip-two-members": twoMembers,
		"gzip-garbage":     append(bytes.Clone(gz[:10]), bytes.Repeat([]byte{0xa5}, 4096)...),
		"zstd-half":        zs[:len(zs)/2],
		"zstd-corrupt":     flip(zs, len(zs)/2),
		"zstd-dictionary":  dict,
		"zstd-two-frames":  twoFrames,
		"zstd-skippable":   skippable,
		"raw-tar":          raw,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			enc, ok, st, err := FindWithStats(context.Background(), opener(raw), opener(blob))
			if err != nil || ok {
				t.Fatalf("Find = %s, %v, %v; want no match, no error", enc, ok, err)
			}
			t.Logf("%+v", st)
		})
	}
}

// TestFindErrors: ctx and the two streams' errors come back as errors.
func TestFindErrors(t *testing.T) {
	raw := genTar(t, 5, 256<<10)
	blob := encode(t, mkEnc(t, EncoderStdlib, 6), raw)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Find(ctx, opener(raw), opener(blob)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancelling := func() (io.ReadCloser, error) {
		return io.NopCloser(&cancelReader{r: bytes.NewReader(raw), cancel: cancel}), nil
	}
	if _, _, err := Find(ctx, cancelling, opener(blob)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled during a trial: err %v", err)
	}
	boom := errors.New("boom")
	fail := func() (io.ReadCloser, error) { return nil, boom }
	if _, _, err := Find(context.Background(), opener(raw), fail); !errors.Is(err, boom) {
		t.Errorf("orig fails: err %v", err)
	}
	if _, _, err := Find(context.Background(), fail, opener(blob)); !errors.Is(err, boom) {
		t.Errorf("raw fails: err %v", err)
	}
	broken := func(b []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(b[:1000]), errReader{boom})), nil
		}
	}
	if _, _, err := Find(context.Background(), broken(raw), opener(blob)); !errors.Is(err, boom) {
		t.Errorf("raw read fails: err %v", err)
	}
	if _, _, err := Find(context.Background(), opener(raw), broken(blob)); !errors.Is(err, boom) {
		t.Errorf("orig read fails: err %v", err)
	}
}

// cancelReader cancels a context once read from.
type cancelReader struct {
	r      io.Reader
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// FuzzFind: no input makes Find panic or report a match it cannot
// reproduce.
func FuzzFind(f *testing.F) {
	raw := []byte("hello, hello, hello chunkyard")
	f.Add(raw, encode(f, mkEnc(f, EncoderStdlib, 6), raw))
	f.Add(raw, encode(f, mkEnc(f, EncoderKlauspostZstd, 2), raw))
	f.Add(raw, encode(f, mkEnc(f, EncoderPgzip, 5), raw))
	f.Add([]byte{}, encode(f, mkEnc(f, EncoderStdlib, 1), nil))
	f.Fuzz(func(t *testing.T, raw, blob []byte) {
		enc, ok, err := Find(context.Background(), opener(raw), opener(blob))
		if err != nil {
			t.Fatal(err) // in-memory streams never fail
		}
		if ok && !bytes.Equal(encode(t, enc, raw), blob) {
			t.Fatalf("%s does not reproduce the blob", enc)
		}
	})
}

// TestFindOtherZstdClass: klauspost zstd v1.20.3 (what regctl v0.11.7
// writes) is another output class than this build's v1.18.0; its frame
// header looks the same, but Find must not claim it. The first byte that
// differs is 120642 of 124943, so the default candidate runs long.
func TestFindOtherZstdClass(t *testing.T) {
	raw := genTar(t, 8, 400<<10)
	blob, err := os.ReadFile("testdata/zstd-default-v1.20.3.zst")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sum(blob), "073b4709d21f383ff0a57ac91c925df9e71a0d7345a467a6ee4fcf0a78a22d1d"; got != want {
		t.Fatalf("testdata sha256 %s, want %s", got, want)
	}
	// The blob decodes to raw: only the encoder's class differs.
	zr, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if dec, err := io.ReadAll(zr); err != nil || !bytes.Equal(dec, raw) {
		t.Fatalf("testdata does not decode to the input: %v", err)
	}
	enc, ok, st := find(t, raw, blob)
	t.Logf("%+v", st)
	if ok {
		t.Fatalf("Find claims %s reproduces klauspost v1.20.3 output", enc)
	}
	if st.Trials == 0 {
		t.Error("no candidate tried: the header should look like klauspost's")
	}
}
