package assembler

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler/codec"
	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// testLayer is a gzip level-6 layer of a tar of n pseudo-random files,
// stored split in m, with its recipe.
func testLayer(t testing.TB, m *memChunks, seed byte, files int) (Blob, []byte) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for i := range files {
		data := payload(32 << 10)
		data[0] = seed
		for j := range data[:len(data)/2] { // half compressible
			data[j] = "abcd\n"[int(data[j])%5]
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d-%d", seed, i), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, 6)
	zw.Write(raw.Bytes())
	zw.Close()
	blob := gz.Bytes()

	enc, ok, err := codec.Find(context.Background(),
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw.Bytes())), nil },
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
	if err != nil || !ok {
		t.Fatalf("no encoding found: %v", err)
	}
	var headers, content bytes.Buffer
	st, err := tarsplit.Split(bytes.NewReader(raw.Bytes()), &headers, &content)
	if err != nil {
		t.Fatal(err)
	}
	encJSON, _ := json.Marshal(enc)
	b := Blob{Digest: digest.FromBytes(blob), Size: int64(len(blob)),
		Layout: &refgraph.Layout{TarSize: st.TarBytes, Encoding: encJSON}}
	add := func(data []byte) {
		for len(data) > 0 {
			n := min(64<<10, len(data))
			id := chunkstore.ID(sha256.Sum256(data[:n]))
			m.data[id] = bytes.Clone(data[:n])
			b.Chunks = append(b.Chunks, refgraph.ChunkRef{ID: id, RawLen: uint32(n)})
			data = data[n:]
		}
	}
	add(headers.Bytes())
	b.Layout.HeaderChunks = len(b.Chunks)
	add(content.Bytes())
	return b, blob
}

func newMem() *memChunks {
	return &memChunks{data: map[chunkstore.ID][]byte{}, reads: map[chunkstore.ID]int{},
		corrupt: map[chunkstore.ID]bool{}, fail: map[chunkstore.ID]error{}}
}

func newLayerCache(t testing.TB, dir string) *chunkstore.FileCache {
	t.Helper()
	c, err := chunkstore.OpenFileCache(dir, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readRange(t testing.TB, a *Assembler, b Blob, off, n int64) ([]byte, error) {
	t.Helper()
	r, err := a.Open(context.Background(), b, off, n)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// A cache entry found on disk is not trusted by its name and size: one
// that was corrupted (as after a power loss, or bit rot) is dropped and
// the layer encoded again, for whole reads and ranges alike.
func TestLayerCacheEntryVerifiedOnLoad(t *testing.T) {
	dir := t.TempDir()
	m := newMem()
	b, blob := testLayer(t, m, 1, 24)
	a := New(m, m, Options{LayerCache: newLayerCache(t, dir)})
	if got, err := readRange(t, a, b, 0, b.Size); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("first pull: %v", err)
	}
	a.Close()
	path := filepath.Join(dir, LayerCacheKey(b.Digest))
	cached, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(cached, blob) {
		t.Fatalf("no cache entry after a whole pull: %v", err)
	}
	for _, tc := range []struct {
		name    string
		off, n  int64
		corrupt int64
	}{
		{"whole", 0, b.Size, b.Size / 2},
		{"range", 100, 1000, 500},
	} {
		cached[tc.corrupt] ^= 0x55
		if err := os.WriteFile(path, cached, 0o644); err != nil {
			t.Fatal(err)
		}
		cached[tc.corrupt] ^= 0x55
		a := New(m, m, Options{LayerCache: newLayerCache(t, dir)}) // a restart
		got, err := readRange(t, a, b, tc.off, tc.n)
		if err != nil || !bytes.Equal(got, blob[tc.off:tc.off+tc.n]) {
			t.Errorf("%s: served %d bytes (%v), equal %v: a corrupt cache entry was served", tc.name, len(got), err, bytes.Equal(got, blob[tc.off:tc.off+tc.n]))
		}
		if st := a.Stats(); st.BadEntries != 1 {
			t.Errorf("%s: stats %+v, want the bad entry counted", tc.name, st)
		}
		a.Close()
	}
}

// An entry that goes bad while served (checked earlier by this process)
// ends a whole read with ErrDigestMismatch, never io.EOF, and is dropped.
func TestLayerCacheEntryVerifiedWhileServed(t *testing.T) {
	dir := t.TempDir()
	m := newMem()
	b, blob := testLayer(t, m, 2, 8)
	a := New(m, m, Options{LayerCache: newLayerCache(t, dir)})
	defer a.Close()
	if _, err := readRange(t, a, b, 0, b.Size); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(blob)
	bad[10] ^= 1
	if err := os.WriteFile(filepath.Join(dir, LayerCacheKey(b.Digest)), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRange(t, a, b, 0, b.Size); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("whole read of a bad entry: %v, want ErrDigestMismatch", err)
	}
	if got, err := readRange(t, a, b, 0, b.Size); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("read after the bad entry was dropped: %v", err)
	}
}

// Readers that stall on cold layers hold no encode slot: a fast reader of
// another cold layer is served, and concurrent misses of one layer cost
// one encode.
func TestStalledReadersDoNotHoldEncodes(t *testing.T) {
	m := newMem()
	slow, slowBlob := testLayer(t, m, 3, 16)
	fast, fastBlob := testLayer(t, m, 4, 16)
	a := New(m, m, Options{LayerCache: newLayerCache(t, t.TempDir()), MaxEncodes: 2})
	defer a.Close()

	const stalled = 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	opened := make(chan io.ReadCloser, stalled)
	for range stalled {
		wg.Add(1)
		go func() { // open and read one byte, then stall
			defer wg.Done()
			r, err := a.Open(ctx, slow, 0, slow.Size)
			if err != nil {
				return
			}
			io.ReadFull(r, make([]byte, 1))
			opened <- r
		}()
	}
	for range stalled {
		select {
		case r := <-opened:
			defer r.Close()
		case <-time.After(30 * time.Second):
			t.Fatal("the stalled readers could not even open their layer")
		}
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer fcancel()
	r, err := a.Open(fctx, fast, 0, fast.Size)
	if err != nil {
		t.Fatalf("fast reader blocked by stalled ones: %v", err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, fastBlob) {
		t.Fatalf("fast reader: %v", err)
	}
	st := a.Stats()
	if st.Misses != 2 || st.Joined != stalled-1 {
		t.Errorf("stats %+v: want 2 encodes (one per layer) and %d joins", st, stalled-1)
	}
	// The stalled readers, resuming, get the whole layer.
	r, err = a.Open(ctx, slow, 0, slow.Size)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, slowBlob) {
		t.Fatalf("slow layer: %v", err)
	}
	r.Close()
	cancel()
	wg.Wait()
}

// Ranges of a cold layer, and a whole read alongside, all get their bytes
// from one encode.
func TestColdRangesShareOneEncode(t *testing.T) {
	m := newMem()
	b, blob := testLayer(t, m, 5, 24)
	a := New(m, m, Options{LayerCache: newLayerCache(t, t.TempDir())})
	defer a.Close()
	ranges := [][2]int64{{0, 10}, {b.Size - 10, 10}, {b.Size / 3, b.Size / 3}, {0, b.Size}}
	var wg sync.WaitGroup
	errs := make(chan error, len(ranges))
	for _, rg := range ranges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := readRange(t, a, b, rg[0], rg[1])
			if err == nil && !bytes.Equal(got, blob[rg[0]:rg[0]+rg[1]]) {
				err = fmt.Errorf("range %v: wrong bytes", rg)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := a.Stats(); st.Misses+st.Hits < 1 || st.Misses > 1 {
		t.Errorf("stats %+v: want one encode", st)
	}
}

// A corrupt chunk fails the fill: every reader gets the error, no reader
// gets io.EOF, and nothing is cached. That holds for a range too, even
// one that ends long before the corrupt chunk: the fill's encode checks
// the layer's digest, not each chunk, so a range ends only once the digest
// is known good.
func TestFillFailureReachesEveryReader(t *testing.T) {
	m := newMem()
	b, _ := testLayer(t, m, 6, 16)
	m.corrupt[b.Chunks[len(b.Chunks)-1].ID] = true
	cache := newLayerCache(t, t.TempDir())
	a := New(m, m, Options{LayerCache: cache})
	defer a.Close()
	for range 3 {
		if _, err := readRange(t, a, b, 0, b.Size); err == nil {
			t.Fatal("a layer with a corrupt chunk read to the end")
		}
		if _, err := readRange(t, a, b, 0, 10); err == nil {
			t.Fatal("a range of a layer with a corrupt chunk read to its end")
		}
	}
	if n, _ := cache.Usage(); n != 0 {
		t.Fatalf("%d cache entries after failed encodes", n)
	}
}
