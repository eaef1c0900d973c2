package codec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool returns the path of a program the test runs, skipping without
// it unless CHUNKYARD_REQUIRE_TOOLS=1 (the test command sets it), which
// makes its absence a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CHUNKYARD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is not installed and CHUNKYARD_REQUIRE_TOOLS=1 (scripts/install-system installs it)", name)
		}
		t.Skipf("%s is not installed; set CHUNKYARD_REQUIRE_TOOLS=1 to make this fail", name)
	}
	return p
}

// runTool runs a command with stdin and returns its stdout.
func runTool(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return out
}

// python runs a python3 program with the raw input on stdin; the
// program writes the blob to stdout.
func python(t *testing.T, raw []byte, prog string) []byte {
	t.Helper()
	return runTool(t, raw, "python3", "-c", "import sys, gzip, zlib, io, struct\nd = sys.stdin.buffer.read()\n"+prog)
}

// toolCase is a blob a real tool wrote and what Find must say of it.
type toolCase struct {
	name    string
	blob    func(t *testing.T, raw []byte) []byte
	encoder string
	level   int
	single  bool // pigz -p 1
}

func toolCases() []toolCase {
	gz := func(args ...string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, raw []byte) []byte {
			return runTool(t, raw, "gzip", append([]string{"-c"}, args...)...)
		}
	}
	pigz := func(args ...string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, raw []byte) []byte {
			return runTool(t, raw, "pigz", append([]string{"-c"}, args...)...)
		}
	}
	py := func(prog string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, raw []byte) []byte { return python(t, raw, prog) }
	}
	return []toolCase{
		{"gzip-6", gz("-6"), EncoderGNUGzip, 6, false},
		{"gzip-9n", gz("-9", "-n"), EncoderGNUGzip, 9, false},
		{"gzip-1", gz("-1"), EncoderGNUGzip, 1, false},
		{"gzip-4", gz("-4"), EncoderGNUGzip, 4, false},
		{"gzip-file", func(t *testing.T, raw []byte) []byte {
			p := filepath.Join(t.TempDir(), "layer.tar")
			if err := os.WriteFile(p, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			runTool(t, nil, "gzip", "-7", p)
			b, err := os.ReadFile(p + ".gz")
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, EncoderGNUGzip, 7, false},
		{"pigz-6", pigz("-6", "-p", "2"), EncoderPigz, 6, false},
		{"pigz-9", pigz("-9", "-p", "3"), EncoderPigz, 9, false},
		{"pigz-1", pigz("-1", "-p", "2"), EncoderPigz, 1, false},
		{"pigz-p1-1", pigz("-1", "-p", "1"), EncoderPigz, 1, true},
		{"pigz-p1-2", pigz("-2", "-p", "1"), EncoderPigz, 2, true},
		// Python's gzip module: GzipFile and gzip.compress stamp the time
		// and write OS 255; with mtime=0 gzip.compress is zlib's own gzip
		// mode (OS 3).
		{"python-gzip-9", py("sys.stdout.buffer.write(gzip.compress(d))"), EncoderZlib, 9, false},
		{"python-gzip-6-mtime0", py("sys.stdout.buffer.write(gzip.compress(d, 6, mtime=0))"), EncoderZlib, 6, false},
		{"python-gzipfile-1", py(`b = io.BytesIO()
with gzip.GzipFile(filename="layer.tar", mode="wb", compresslevel=1, fileobj=b) as f:
    for i in range(0, len(d), 10240):
        f.write(d[i:i+10240])
sys.stdout.buffer.write(b.getvalue())`), EncoderZlib, 1, false},
		{"python-zlib-wbits31-5", py("c = zlib.compressobj(5, zlib.DEFLATED, 31)\nsys.stdout.buffer.write(c.compress(d) + c.flush())"), EncoderZlib, 5, false},
		// Java's GZIPOutputStream: its own 10-byte header (MTIME 0, XFL 0,
		// OS 0; 255 since Java 16) around zlib's raw deflate at any level.
		{"java-like-6", py(`c = zlib.compressobj(6, zlib.DEFLATED, -15)
body = c.compress(d) + c.flush()
sys.stdout.buffer.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x00" + body + struct.pack("<II", zlib.crc32(d), len(d) & 0xffffffff))`), EncoderZlib, 6, false},
		{"java16-like-9", py(`c = zlib.compressobj(9, zlib.DEFLATED, -15)
body = c.compress(d) + c.flush()
sys.stdout.buffer.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + struct.pack("<II", zlib.crc32(d), len(d) & 0xffffffff))`), EncoderZlib, 9, false},
	}
}

// TestFindToolLayers: layers written by GNU gzip, pigz, Python and a
// Java-like writer are found, with the tool's encoder and level, by this
// build's own encoders (no tool runs on the way back), re-encoded byte for
// byte, and the checkpoints the finding trial recorded encode them again
// in parallel and from any segment.
func TestFindToolLayers(t *testing.T) {
	raw := genTar(t, 21, 1<<20+12345)
	if raceEnabled {
		raw = raw[:min(len(raw), 700<<10)]
	}
	for _, c := range toolCases() {
		t.Run(c.name, func(t *testing.T) {
			blob := c.blob(t, raw)
			res, ok, st, err := FindWithOptions(context.Background(), opener(raw), opener(blob), FindOptions{CheckpointSpacing: 96 << 10})
			if err != nil {
				t.Fatal(err)
			}
			enc := res.Encoding
			t.Logf("%s: %d trials, %d raw bytes fed; %d checkpoint bytes", enc, st.Trials, st.RawBytes, len(res.Checkpoints))
			if !ok || enc.Encoder != c.encoder || enc.Level != c.level || (enc.Pigz != nil && enc.Pigz.Single) != c.single {
				t.Fatalf("Find: %s ok=%v (%s), want %s level %d", enc, ok, st.Note, c.encoder, c.level)
			}
			if res.RawSize != int64(len(raw)) || res.RawDigest.Encoded() != sum(raw) {
				t.Fatalf("result says raw is %d bytes %s", res.RawSize, res.RawDigest)
			}
			if got := encode(t, enc, raw, 4000, 70000); !bytes.Equal(got, blob) {
				t.Fatal("re-encode differs")
			}
			if c.encoder == EncoderPigz {
				if res.Checkpoints != nil {
					t.Fatal("pigz recorded checkpoints")
				}
				return
			}
			checkPlan(t, enc, res.Checkpoints, raw, blob)
		})
	}
}

// checkPlan encodes blob again through a Plan of cps: whole on 1 and 3
// workers, and from every segment to the end.
func checkPlan(t *testing.T, enc Encoding, cps Checkpoints, raw, blob []byte) {
	t.Helper()
	if cps == nil {
		t.Fatal("no checkpoints recorded")
	}
	p, err := NewPlan(enc, cps)
	if err != nil {
		t.Fatal(err)
	}
	if p.Size() != int64(len(blob)) || p.RawSize() != int64(len(raw)) || len(p.Segments()) < 3 {
		t.Fatalf("plan of %d segments, %d bytes from %d raw", len(p.Segments()), p.Size(), p.RawSize())
	}
	for _, workers := range []int{1, 3} {
		var out bytes.Buffer
		if err := p.Encode(context.Background(), &out, bytes.NewReader(raw), 0, workers, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), blob) {
			t.Fatalf("%d workers: plan output differs (%d bytes, want %d)", workers, out.Len(), len(blob))
		}
	}
	for i, s := range p.Segments() {
		var out bytes.Buffer
		if err := p.Encode(context.Background(), &out, bytes.NewReader(raw[s.From:]), i, 2, nil); err != nil {
			t.Fatalf("from segment %d: %v", i, err)
		}
		if off := p.Offset(i); !bytes.Equal(out.Bytes(), blob[off:]) {
			t.Fatalf("from segment %d (blob offset %d): output differs", i, off)
		}
		if got := p.StartFor(p.Offset(i)); got != i {
			t.Fatalf("StartFor(Offset(%d)) = %d", i, got)
		}
	}
}

// TestOldGNUGzipRecipe: recipes the gnu-gzip helper (which ran the host's
// gzip 1.12) left in a store are written by this build's own encoder,
// with the bytes gzip writes.
func TestOldGNUGzipRecipe(t *testing.T) {
	raw := genTar(t, 22, 300<<10)
	blob := runTool(t, raw, "gzip", "-c", "-9", "-n")
	if !Available(EncoderGNUGzip, "gnu-gzip 1.12") {
		t.Fatal("class gnu-gzip 1.12 unavailable")
	}
	old := Encoding{Format: FormatGzip, Encoder: EncoderGNUGzip, Version: "gnu-gzip 1.12", Level: 9,
		Gzip: &GzipHeader{XFL: 2, OS: osUnix}}
	if got := encode(t, old, raw, 1<<20); !bytes.Equal(got, blob) {
		t.Fatal("the old recipe re-encodes to other bytes")
	}
	if Available(EncoderGNUGzip, "gnu-gzip 1.13") {
		t.Fatal("an untested gzip release is claimed")
	}
}

// TestPlanStdlib: go-stdlib blobs at every level record checkpoints that
// re-encode them in segments, and compress/gzip writes the same bytes.
func TestPlanStdlib(t *testing.T) {
	raw := genTar(t, 23, 900<<10)
	levels := []int{-2, 0, 1, 2, 3, 4, 6, 9}
	if raceEnabled {
		levels = []int{1, 6}
	}
	for _, l := range levels {
		enc := mkEnc(t, EncoderStdlib, l)
		var blob bytes.Buffer
		w, err := NewWriterOptions(&blob, enc, WriterOptions{CheckpointSpacing: 128 << 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(blob.Bytes(), encode(t, enc, raw, 1000)) {
			t.Fatalf("level %d: recording changes the output", l)
		}
		checkPlan(t, enc, w.Checkpoints(), raw, blob.Bytes())
	}
}

// TestPlanRefuses: a table that is cut, altered or for another encoding
// is refused; a plan fed other input fails or is caught downstream.
func TestPlanRefuses(t *testing.T) {
	raw := genTar(t, 24, 600<<10)
	enc := mkEnc(t, EncoderStdlib, 6)
	var blob bytes.Buffer
	w, err := NewWriterOptions(&blob, enc, WriterOptions{CheckpointSpacing: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	cps := w.Checkpoints()
	other := enc
	other.Level = 5
	zl := mkEnc(t, EncoderZlib, 6)
	for name, c := range map[string]struct {
		enc Encoding
		cps Checkpoints
	}{
		"cut":       {enc, cps[:len(cps)-3]},
		"trailing":  {enc, append(bytes.Clone(cps), 0)},
		"version":   {enc, append([]byte{9}, cps[1:]...)},
		"level":     {other, cps},
		"encoder":   {zl, cps},
		"empty":     {enc, nil},
		"rawsize":   {enc, append([]byte{cps[0], cps[1], cps[2] + 1}, cps[3:]...)},
		"zstd":      {mkEnc(t, EncoderKlauspostZstd, 2), cps},
		"klauspost": {mkEnc(t, EncoderKlauspostGzip, 6), cps},
	} {
		if _, err := NewPlan(c.enc, c.cps); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: NewPlan: %v, want ErrInvalid", name, err)
		}
	}
	p, err := NewPlan(enc, cps)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(raw)
	for i := 1000; i < len(bad); i += 5000 {
		bad[i] ^= 0x55
	}
	var out bytes.Buffer
	err = p.Encode(context.Background(), &out, bytes.NewReader(bad), 0, 2, nil)
	if err == nil && bytes.Equal(out.Bytes(), blob.Bytes()) {
		t.Fatal("other input gave the blob")
	}
	if err != nil && !errors.Is(err, ErrSegment) {
		t.Logf("other input: %v", err)
	}
	// Input shorter than the plan says.
	err = p.Encode(context.Background(), io.Discard, bytes.NewReader(raw[:len(raw)/2]), 0, 2, nil)
	if err == nil || !strings.Contains(err.Error(), "raw input") {
		t.Fatalf("short input: %v", err)
	}
}

// TestPlanSlots: extra workers come only from the slots, and all are
// given back; a cancelled encode stops and gives them back too.
func TestPlanSlots(t *testing.T) {
	raw := genTar(t, 25, 800<<10)
	enc := mkEnc(t, EncoderStdlib, 1)
	var blob bytes.Buffer
	w, _ := NewWriterOptions(&blob, enc, WriterOptions{CheckpointSpacing: 64 << 10})
	w.Write(raw)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(enc, w.Checkpoints())
	if err != nil {
		t.Fatal(err)
	}
	s := &countSlots{free: 1}
	var out bytes.Buffer
	if err := p.Encode(context.Background(), &out, bytes.NewReader(raw), 0, 4, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), blob.Bytes()) {
		t.Fatal("output differs")
	}
	if s.free != 1 || s.taken > 1 {
		t.Fatalf("slots: %d free after, %d taken at most, want 1 and <= 1", s.free, s.taken)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Encode(ctx, io.Discard, bytes.NewReader(raw), 0, 4, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled encode: %v", err)
	}
	if s.free != 1 {
		t.Fatalf("%d slots free after a cancelled encode, want 1", s.free)
	}
}

type countSlots struct {
	free, taken int
}

func (s *countSlots) TryAcquire() bool {
	if s.free == 0 {
		return false
	}
	s.free--
	s.taken++
	return true
}

func (s *countSlots) Release() { s.free++ }
