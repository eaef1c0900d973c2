package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chunkyard/chunkyard/bench/benchtest"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestRebuildDedups(t *testing.T) {
	t.Parallel()
	a, b := rebuildLayouts(t)
	e := newEstimator(t, smallChunks())
	add(t, e, a, b)
	rep := e.Report()
	tot := rep.Total
	t.Logf("plain %d, chunkyard %d (%.2fx), ideal CDC %d (%.2fx)", tot.Plain.Bytes,
		tot.Chunkyard.Bytes, tot.PlainOverChunkyard, tot.IdealCDC.Bytes, tot.PlainOverIdealCDC)
	if tot.Manifests != 2 || tot.Blobs != 4 || tot.Layers != 2 || tot.Reproduced != 2 {
		t.Fatalf("counts: %+v", tot)
	}
	if len(tot.Encoders) != 1 {
		t.Fatalf("encoders: %v", tot.Encoders)
	}
	for enc, n := range tot.Encoders {
		if n != 2 || !strings.Contains(enc, "go-stdlib level 6") {
			t.Fatalf("encoders: %v", tot.Encoders)
		}
	}
	if !(tot.Plain.Bytes > tot.Chunkyard.Bytes) {
		t.Errorf("plain %d <= chunkyard %d", tot.Plain.Bytes, tot.Chunkyard.Bytes)
	}
	if !(tot.Chunkyard.Bytes <= tot.IdealCDC.Bytes) {
		t.Errorf("chunkyard %d > ideal plain CDC %d", tot.Chunkyard.Bytes, tot.IdealCDC.Bytes)
	}
	if tot.PlainOverChunkyard < 1.5 {
		t.Errorf("plain / chunkyard = %.2f, want a rebuild to cost little", tot.PlainOverChunkyard)
	}
	// The rebuild adds a fraction of the first layout to chunkyard.
	first, second := rep.Layouts[0], rep.Layouts[1]
	if 4*second.Chunkyard.Bytes > first.Chunkyard.Bytes {
		t.Errorf("rebuild added %d bytes to chunkyard, the first image %d", second.Chunkyard.Bytes, first.Chunkyard.Bytes)
	}
	if first.Chunkyard.Bytes+second.Chunkyard.Bytes != tot.Chunkyard.Bytes ||
		first.Plain.Bytes+second.Plain.Bytes != tot.Plain.Bytes {
		t.Errorf("layouts do not add up to the total: %+v %+v %+v", first.Summary, second.Summary, tot)
	}
	// Every chunk costs its overhead.
	u := tot.Chunkyard
	if u.Bytes != u.StoredBytes+u.Chunks*ChunkOverhead || u.MeanChunk != u.RawBytes/u.Chunks {
		t.Errorf("usage: %+v", u)
	}
	// The tar of each layer is the header plus content streams.
	if tot.TarBytes == 0 || tot.IdealCDC.RawBytes < tot.TarBytes/2 {
		t.Errorf("tar bytes %d, ideal raw %d", tot.TarBytes, tot.IdealCDC.RawBytes)
	}
}

func TestSameLayoutTwice(t *testing.T) {
	t.Parallel()
	a := t.TempDir()
	benchtest.WriteLayout(t, a, benchtest.Image{Layers: []benchtest.Layer{
		benchtest.GzipLayer(benchtest.Gzip(t, benchtest.Tar(t, benchtest.Files(9, 8, 8<<10), t1), 6))}})
	e := newEstimator(t, smallChunks())
	add(t, e, a)
	once := e.Report().Total
	add(t, e, a)
	rep := e.Report()
	if rep.Total.Blobs != once.Blobs || rep.Total.Plain != once.Plain || rep.Total.Chunkyard != once.Chunkyard || rep.Total.IdealCDC != once.IdealCDC {
		t.Fatalf("second add changed the total:\n%+v\n%+v", once, rep.Total)
	}
	again := rep.Layouts[1]
	if again.Blobs != 0 || again.Manifests != 0 || again.Seen != 3 || again.Plain.Bytes != 0 {
		t.Fatalf("second layout report: %+v", again)
	}
}

// TestGNUGzipReproduced: a layer written by the GNU gzip binary is reproduced
// by chunkyard's own encoder, so the estimate splits it like any other.
func TestGNUGzipReproduced(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/gzip"); err != nil {
		t.Skip("no /usr/bin/gzip to write the input")
	}
	tarball := benchtest.Tar(t, benchtest.Files(3, 20, 8<<10), t1)
	cmd := exec.Command("/usr/bin/gzip", "-9", "-n")
	cmd.Stdin = bytes.NewReader(tarball)
	gz, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	tot := estimateOneLayer(t, gz).Total
	if tot.Layers != 1 || tot.Reproduced != 1 || len(tot.NotReproduced) != 0 {
		t.Fatalf("counts: %+v", tot)
	}
	var gnu bool
	for enc := range tot.Encoders {
		gnu = gnu || strings.Contains(enc, "gnu-gzip level 9")
	}
	if !gnu {
		t.Fatalf("encoders: %v", tot.Encoders)
	}
}

// TestUnknownGzipNotReproduced: a gzip stream no known encoder writes (sync
// flushes in the middle) stays opaque: its chunks are the gzip bytes.
func TestUnknownGzipNotReproduced(t *testing.T) {
	t.Parallel()
	tarball := benchtest.Tar(t, benchtest.Files(3, 20, 8<<10), t1)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for off := 0; off < len(tarball); off += 10_000 {
		zw.Write(tarball[off:min(off+10_000, len(tarball))])
		zw.Flush()
	}
	zw.Close()
	gz := buf.Bytes()
	rep := estimateOneLayer(t, gz)
	tot := rep.Total
	if tot.Layers != 1 || tot.Reproduced != 0 || tot.NotReproduced["gzip: no encoder reproduces it"] != 1 {
		t.Fatalf("counts: %+v", tot)
	}
	var layer BlobReport
	for _, b := range rep.Layouts[0].Details {
		if b.Role == RoleLayer {
			layer = b
		}
	}
	if !layer.Layer || layer.Reproduced || layer.Why == "" || layer.TarBytes != int64(len(tarball)) {
		t.Fatalf("layer: %+v", layer)
	}
	if layer.Chunkyard.RawBytes != int64(len(gz)) {
		t.Errorf("chunkyard raw %d, gzip blob %d", layer.Chunkyard.RawBytes, len(gz))
	}
	if layer.IdealCDC.RawBytes != int64(len(tarball)) {
		t.Errorf("ideal raw %d, tar %d", layer.IdealCDC.RawBytes, len(tarball))
	}
}

func estimateOneLayer(t *testing.T, gz []byte) Report {
	t.Helper()
	dir := t.TempDir()
	benchtest.WriteLayout(t, dir, benchtest.Image{Layers: []benchtest.Layer{benchtest.GzipLayer(gz)}})
	opts := smallChunks()
	opts.Details = true
	e := newEstimator(t, opts)
	add(t, e, dir)
	return e.Report()
}

func TestOtherEncodings(t *testing.T) {
	t.Parallel()
	tarball := benchtest.Tar(t, benchtest.Files(4, 10, 8<<10), t1)
	var zst bytes.Buffer
	zw, err := zstd.NewWriter(&zst)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tarball)
	zw.Close()
	notTar := benchtest.Gzip(t, []byte(strings.Repeat("not a tar ", 1000)), 6)
	dir := t.TempDir()
	benchtest.WriteLayout(t, dir, benchtest.Image{Layers: []benchtest.Layer{
		{MediaType: ocispec.MediaTypeImageLayerZstd, Data: zst.Bytes()},
		{MediaType: ocispec.MediaTypeImageLayer, Data: benchtest.Tar(t, benchtest.Files(5, 3, 1000), t1)},
		{MediaType: ocispec.MediaTypeImageLayerGzip, Data: benchtest.Gzip(t, tarball, 1)},
		{MediaType: ocispec.MediaTypeImageLayerGzip, Data: notTar},
	}})
	e := newEstimator(t, smallChunks())
	add(t, e, dir)
	tot := e.Report().Total
	if tot.Blobs != 5 || tot.Layers != 3 || tot.Reproduced != 3 || tot.NotReproduced["gzip: not a splittable tar"] != 1 {
		t.Fatalf("counts: %+v", tot)
	}
	var zstdSeen, tarSeen, level1Seen bool
	for enc := range tot.Encoders {
		zstdSeen = zstdSeen || strings.Contains(enc, "klauspost-zstd")
		tarSeen = tarSeen || strings.HasPrefix(enc, "tar")
		level1Seen = level1Seen || strings.Contains(enc, "go-stdlib level 1")
	}
	if !zstdSeen || !tarSeen || !level1Seen {
		t.Fatalf("encoders: %v", tot.Encoders)
	}
}

// TestNestedIndex: an index inside index.json, a platform manifest whose
// blobs were not pulled, and PendingBytes matching what progress reports.
func TestNestedIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img := benchtest.WriteImage(t, dir, benchtest.Image{Layers: []benchtest.Layer{
		benchtest.GzipLayer(benchtest.Gzip(t, benchtest.Tar(t, benchtest.Files(6, 5, 10<<10), t1), 6))}})
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Size: 100,
		Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000"}
	idx := benchtest.WriteIndex(t, dir, img, absent)
	benchtest.WriteIndexJSON(t, dir, idx)

	e := newEstimator(t, smallChunks())
	pending, err := e.PendingBytes(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	var progress atomic.Int64
	if err := e.AddLayout(context.Background(), dir, func(n int64) { progress.Add(n) }); err != nil {
		t.Fatal(err)
	}
	rep := e.Report()
	l := rep.Layouts[0]
	if l.Manifests != 2 || l.Blobs != 2 || l.Missing != 1 || l.Reproduced != 1 {
		t.Fatalf("layout: %+v", l)
	}
	if progress.Load() != pending || pending != l.Plain.Bytes {
		t.Fatalf("progress %d, pending %d, plain %d", progress.Load(), pending, l.Plain.Bytes)
	}
	if n, err := e.PendingBytes(dir); err != nil || n != 0 {
		t.Fatalf("pending after adding: %d %v", n, err)
	}
}

func TestCorruptBlob(t *testing.T) {
	t.Parallel()
	a := t.TempDir()
	benchtest.WriteLayout(t, a, benchtest.Image{Layers: []benchtest.Layer{
		benchtest.GzipLayer(benchtest.Gzip(t, benchtest.Tar(t, benchtest.Files(9, 4, 64<<10), t1), 6))}})
	blobs, _ := filepath.Glob(filepath.Join(a, "blobs", "sha256", "*"))
	var layer string // the largest blob
	var largest int64
	for _, p := range blobs {
		if fi, _ := os.Stat(p); fi.Size() > largest {
			layer, largest = p, fi.Size()
		}
	}
	b, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(layer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEstimator(t, smallChunks())
	err = e.AddLayout(context.Background(), a, nil)
	if err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("corrupt layer: %v", err)
	}
	if n := len(e.Report().Layouts); n != 0 {
		t.Fatalf("%d layout reports after a failure", n)
	}
	// The failed blob is not counted as seen.
	if n, err := e.PendingBytes(a); err != nil || n != int64(len(b)) {
		t.Fatalf("pending after failure: %d %v, want %d", n, err, len(b))
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	a := t.TempDir()
	benchtest.WriteLayout(t, a, benchtest.Image{Layers: []benchtest.Layer{
		benchtest.GzipLayer(benchtest.Gzip(t, benchtest.Tar(t, benchtest.Files(9, 4, 8<<10), t1), 6))}})
	e := newEstimator(t, smallChunks())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.AddLayout(ctx, a, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if rep := e.Report(); rep.Total.Blobs != 0 || len(rep.Layouts) != 0 {
		t.Fatalf("canceled add counted: %+v", rep)
	}
}

func TestNotALayout(t *testing.T) {
	t.Parallel()
	e := newEstimator(t, Options{})
	err := e.AddLayout(context.Background(), t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Fatalf("empty dir: %v", err)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Polynomial: 0x3DA3358B4DC172}, // reducible
		{MinChunk: 32},
		{MinChunk: 1 << 20, MaxChunk: 1 << 19},
		{AverageBits: 40},
		{Workers: -1},
		{Compression: "fast"},
	} {
		if _, err := NewEstimator(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}
