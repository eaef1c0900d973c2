package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// newConvertEnv is a service that queues layers for conversion; tests run
// the conversions themselves (drain) to be deterministic.
func newConvertEnv(t testing.TB, opts ConvertOptions) *env {
	e := &env{t: t, dir: t.TempDir()}
	opts.Workers = 1
	opts.PendingDir = filepath.Join(e.dir, "pending")
	e.convert = opts
	e.open()
	t.Cleanup(e.close)
	return e
}

// drain converts everything queued.
func (e *env) drain() {
	e.t.Helper()
	for {
		q, err := e.graph.Queued(10)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(q) == 0 {
			return
		}
		for _, d := range q {
			if err := e.svc.convertOne(context.Background(), d); err != nil {
				e.t.Fatalf("convert %s: %v", d, err)
			}
		}
	}
}

// rootfs is a tar of files: some random (incompressible), some text, with
// the given mtime; changed names files whose content differs.
func rootfs(t testing.TB, mtime time.Time, changed ...string) []byte {
	return rootfsN(t, 96, mtime, changed...)
}

func rootfsN(t testing.TB, files int, mtime time.Time, changed ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	rnd := rand.New(rand.NewPCG(7, 7))
	for i := range files {
		name := fmt.Sprintf("usr/lib/file%02d", i)
		data := make([]byte, 64<<10+rnd.IntN(256<<10))
		if i%2 == 0 {
			for j := range data {
				data[j] = byte(rnd.Uint32())
			}
		} else {
			for j := range data {
				data[j] = "abcdefgh ijklmnop\n"[rnd.IntN(18)]
			}
		}
		for _, c := range changed {
			if c == name {
				data = append(data, "changed in this rebuild"...)
			}
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg, Uname: "root"})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

// tool runs a compressor on raw and returns its output. A missing tool
// skips the test, or fails it with CHUNKYARD_REQUIRE_TOOLS=1 (the test
// command installs gzip, pigz and python3).
func tool(t testing.TB, raw []byte, name string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CHUNKYARD_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is not installed and CHUNKYARD_REQUIRE_TOOLS=1", name)
		}
		t.Skipf("%s is not installed; set CHUNKYARD_REQUIRE_TOOLS=1 to make this fail", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func gzipped(t testing.TB, raw []byte, level int) []byte {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw)
	w.Close()
	return buf.Bytes()
}

func TestConvertLayers(t *testing.T) {
	base := rootfsN(t, 24, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	zstdLayer := func() []byte {
		var buf bytes.Buffer
		w, _ := zstd.NewWriter(&buf)
		w.Write(base)
		w.Close()
		return buf.Bytes()
	}()
	garbage := append([]byte{0x1f, 0x8b, 8, 0}, bytes.Repeat([]byte("not deflate"), 1000)...)
	tests := []struct {
		name        string
		blob        []byte
		wantLayer   bool
		checkpoints bool // the recipe has checkpoints
	}{
		{"gzip level 6 (docker, BuildKit)", gzipped(t, base, 6), true, true},
		{"gzip level 1 (crane)", gzipped(t, base, 1), true, true},
		{"gzip level 9", gzipped(t, base, 9), true, true},
		{"GNU gzip -9", tool(t, base, "gzip", "-9", "-n", "-c"), true, true},
		{"GNU gzip -6 in a pipe", tool(t, base, "gzip", "-c"), true, true},
		{"pigz", tool(t, base, "pigz", "-c"), true, false},
		{"Python gzip (zlib -9)", tool(t, base, "python3", "-c", "import sys, gzip; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))"), true, true},
		{"uncompressed tar", base, true, false},
		{"zstd default (containerd)", zstdLayer, true, false},
		{"corrupt gzip", garbage, false, false},
		{"a config, not a layer", []byte(`{"architecture":"amd64"}`), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConvertEnv(t, ConvertOptions{CheckpointSpacing: 512 << 10})
			d := e.pushBlob("app", tt.blob)
			if got := e.readBlob("app", d); !bytes.Equal(got, tt.blob) {
				t.Fatal("blob read back before conversion differs")
			}
			e.drain()
			b, err := e.graph.Blob(d)
			if err != nil {
				t.Fatal(err)
			}
			if (b.Kind == refgraph.KindLayer) != tt.wantLayer || b.Kind == refgraph.KindPending {
				t.Fatalf("kind = %d, want layer %v", b.Kind, tt.wantLayer)
			}
			if tt.wantLayer {
				// One encode: the trial that found the recipe. No pull
				// encode ran, and the encoders were fed about the tar once.
				cs, ls := e.svc.ConvertStats(), e.svc.LayerStats()
				t.Logf("conversion: %+v; %d checkpoint bytes", cs, len(b.Layout.Checkpoints))
				if cs.Layers != 1 || cs.TarBytes != b.Layout.TarSize || ls.Misses != 0 {
					t.Fatalf("conversion stats %+v, layer stats %+v", cs, ls)
				}
				if tt.blob[0] == 0x1f && cs.EncodedBytes > cs.TarBytes*13/10 {
					t.Fatalf("encoders fed %d bytes for a %d-byte tar", cs.EncodedBytes, cs.TarBytes)
				}
				if (len(b.Layout.Checkpoints) > 0) != tt.checkpoints {
					t.Fatalf("%d checkpoint bytes, want some: %v", len(b.Layout.Checkpoints), tt.checkpoints)
				}
			}
			if got := e.readBlob("app", d); !bytes.Equal(got, tt.blob) {
				t.Fatal("blob read back after conversion differs")
			}
			// Ranges too.
			off, n := int64(len(tt.blob)/3), int64(len(tt.blob)/4)
			rc, _, err := e.svc.OpenBlob(context.Background(), "app", d, off, n)
			if err != nil {
				t.Fatal(err)
			}
			var part bytes.Buffer
			part.ReadFrom(rc)
			rc.Close()
			if !bytes.Equal(part.Bytes(), tt.blob[off:off+n]) {
				t.Fatal("range read differs")
			}
			if ls := e.svc.LayerStats(); tt.checkpoints && ls.Ranges != 1 {
				t.Fatalf("layer stats %+v: the range was not encoded from a checkpoint", ls)
			}
			if st := e.graph.Stats(); st.PendingBytes != 0 || st.PendingConversions != 0 {
				t.Fatalf("stats after drain = %+v", st)
			}
		})
	}
}

// TestRebuildDedups: a rebuild with new mtimes and one changed file costs
// little more than the changed file.
func TestRebuildDedups(t *testing.T) {
	e := newConvertEnv(t, ConvertOptions{})
	v1 := gzipped(t, rootfs(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), 6)
	v2 := gzipped(t, rootfs(t, time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC), "usr/lib/file33"), 6)
	d1 := e.pushBlob("app", v1)
	e.drain()
	one := e.graph.Stats()
	d2 := e.pushBlob("app", v2)
	e.drain()
	two := e.graph.Stats()
	added := two.LiveStoredBytes - one.LiveStoredBytes
	t.Logf("v1 %d bytes gzip, stores %d; v2 %d bytes gzip adds %d", len(v1), one.LiveStoredBytes, len(v2), added)
	if added > int64(len(v2))/4 {
		t.Fatalf("the rebuild added %d stored bytes for a %d-byte layer", added, len(v2))
	}
	for d, want := range map[digest.Digest][]byte{d1: v1, d2: v2} {
		if got := e.readBlob("app", d); !bytes.Equal(got, want) {
			t.Fatalf("%s differs", d)
		}
	}
}

func TestConvertFallbacks(t *testing.T) {
	raw := rootfsN(t, 24, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	// zlib's Huffman-only strategy: no encoder here reproduces it.
	foreign := tool(t, raw, "python3", "-c", "import sys, zlib; c = zlib.compressobj(6, zlib.DEFLATED, 31, 8, zlib.Z_HUFFMAN_ONLY); "+
		"sys.stdout.buffer.write(c.compress(sys.stdin.buffer.read()) + c.flush())")
	bomb := gzipped(t, make([]byte, 64<<20), 9) // 64 MiB of zeros, ~1000x
	for name, blob := range map[string][]byte{"zlib Huffman only": foreign, "decompression bomb": bomb} {
		t.Run(name, func(t *testing.T) {
			e := newConvertEnv(t, ConvertOptions{MaxRatio: 100})
			d := e.pushBlob("app", blob)
			e.drain()
			b, _ := e.graph.Blob(d)
			if b.Kind != refgraph.KindOpaque {
				t.Fatalf("kind = %d (%s), want opaque", b.Kind, b.Layout.Encoding)
			}
			if got := e.readBlob("app", d); !bytes.Equal(got, blob) {
				t.Fatal("blob read back differs")
			}
			// Stored opaque, everything written included, costs at most 2%
			// more than the blob (what a plain registry stores).
			if st := e.graph.Stats(); st.PackBytes > int64(len(blob))*102/100 {
				t.Fatalf("packs hold %d bytes for a %d-byte blob", st.PackBytes, len(blob))
			}
		})
	}
}

// TestPullsDuringConversion pulls layers over and over while the converter
// runs in the background: every pull is byte-exact, whether it reads the
// pending file, races its removal, or re-encodes the split layer.
func TestPullsDuringConversion(t *testing.T) {
	e := newConvertEnv(t, ConvertOptions{})
	blobs := map[digest.Digest][]byte{}
	for i := range 4 {
		b := gzipped(t, rootfsN(t, 12, time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC), fmt.Sprintf("usr/lib/file%02d", i)), 1+i)
		blobs[e.pushBlob("app", b)] = b
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(2 * time.Minute)
	for pulls := 0; ; pulls++ {
		for d, want := range blobs {
			if got := e.readBlob("app", d); !bytes.Equal(got, want) {
				t.Fatalf("pull %d of %s differs", pulls, d)
			}
		}
		if st := e.graph.Stats(); st.PendingConversions == 0 {
			if st.ConvertedBlobs != 4 {
				t.Fatalf("converted %d of 4 layers", st.ConvertedBlobs)
			}
			t.Logf("%d rounds of pulls during conversion", pulls+1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("conversion did not finish")
		}
	}
	entries, _ := filepath.Glob(filepath.Join(e.dir, "pending", "*"))
	if len(entries) != 0 {
		t.Fatalf("pending files left: %v", entries)
	}
}

// TestConversionWarmsLayerCache: the converter's verification pass leaves
// the encoded layer in the cache, so the first pull does not re-encode;
// a stale entry for the digest is not taken as proof of the recipe.
func TestConversionWarmsLayerCache(t *testing.T) {
	e := &env{t: t, dir: t.TempDir()}
	e.convert = ConvertOptions{Workers: 1, PendingDir: filepath.Join(e.dir, "pending")}
	var err error
	if e.layers, err = chunkstore.OpenFileCache(filepath.Join(e.dir, "layers"), 1<<30, nil); err != nil {
		t.Fatal(err)
	}
	e.open()
	t.Cleanup(e.close)
	blob := gzipped(t, rootfsN(t, 12, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), 6)
	d := digest.FromBytes(blob)
	// A stale, wrong entry under the digest.
	e.layers.Put(assembler.LayerCacheKey(d), []byte("not the layer"))
	e.pushBlob("app", blob)
	e.drain()
	if b, _ := e.graph.Blob(d); b.Kind != refgraph.KindLayer {
		t.Fatalf("kind = %d", b.Kind)
	}
	if n, size := e.layers.Usage(); n != 1 || size != int64(len(blob)) {
		t.Fatalf("layer cache: %d entries, %d bytes; want the %d-byte layer", n, size, len(blob))
	}
	if got := e.readBlob("app", d); !bytes.Equal(got, blob) {
		t.Fatal("pull differs")
	}
}
