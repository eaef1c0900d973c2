package assembler

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler/codec"
)

// withCheckpoints records checkpoints for layer b every spacing bytes of
// its tar, as the conversion does, and returns b with them in its recipe.
func withCheckpoints(t *testing.T, m *memChunks, b Blob, blob []byte, spacing int64) Blob {
	t.Helper()
	a := New(m, m, Options{})
	defer a.Close()
	tarAgain := func() (io.ReadCloser, error) {
		return a.OpenTar(context.Background(), b.Digest, b.Chunks, b.Layout.HeaderChunks)
	}
	res, ok, _, err := codec.FindWithOptions(context.Background(), tarAgain,
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil },
		codec.FindOptions{CheckpointSpacing: spacing})
	if err != nil || !ok || len(res.Checkpoints) == 0 {
		t.Fatalf("no checkpoints recorded (found %v): %v", ok, err)
	}
	encJSON, err := json.Marshal(res.Encoding)
	if err != nil {
		t.Fatal(err)
	}
	l := *b.Layout
	l.Encoding, l.Checkpoints = encJSON, res.Checkpoints
	b.Layout = &l
	return b
}

// A cold layer with checkpoints is encoded in segments, whatever the
// parallelism and the encode slots free, and comes out byte for byte;
// ranges without a cache start at the checkpoint before them.
func TestColdPullInSegments(t *testing.T) {
	m := newMem()
	b, blob := testLayer(t, m, 9, 40) // 1.3 MiB of tar
	b = withCheckpoints(t, m, b, blob, 128<<10)
	for _, o := range []Options{
		{EncodeParallelism: 1, MaxEncodes: 1},
		{EncodeParallelism: 2, MaxEncodes: 1}, // one slot: no second goroutine
		{EncodeParallelism: 4, MaxEncodes: 8},
	} {
		for _, cached := range []bool{false, true} {
			if cached {
				o.LayerCache = newLayerCache(t, t.TempDir())
			}
			a := New(m, m, o)
			if got, err := readRange(t, a, b, 0, b.Size); err != nil || !bytes.Equal(got, blob) {
				t.Fatalf("%+v: whole pull: %v, equal %v", o, err, bytes.Equal(got, blob))
			}
			for _, rg := range [][2]int64{{b.Size - 9, 9}, {b.Size / 2, 4096}, {b.Size / 5, b.Size / 2}, {1, 1}} {
				if got, err := readRange(t, a, b, rg[0], rg[1]); err != nil || !bytes.Equal(got, blob[rg[0]:rg[0]+rg[1]]) {
					t.Fatalf("%+v: range %v: %v, equal %v", o, rg, err, bytes.Equal(got, blob[rg[0]:rg[0]+rg[1]]))
				}
			}
			st := a.Stats()
			if st.BadPlans != 0 || (!cached && st.Ranges == 0) {
				t.Fatalf("%+v, cache %v: stats %+v: want ranges from checkpoints, no bad plan", o, cached, st)
			}
			// Slots go back as the encoding goroutines end, just after
			// their readers saw the end.
			for wait := time.Now(); len(a.encodes) != 0; time.Sleep(10 * time.Millisecond) {
				if time.Since(wait) > 10*time.Second {
					t.Fatalf("%d encode slots still held", len(a.encodes))
				}
			}
			a.Close()
		}
	}
}

// Checkpoints that do not reproduce the layer (here: a wrong trailer
// kept with them) never give a whole pull wrong bytes: the digest check
// fails that pull, the checkpoints are dropped, and the next pull is
// encoded from the start and right.
func TestBadCheckpointsDropped(t *testing.T) {
	m := newMem()
	b, blob := testLayer(t, m, 10, 40)
	b = withCheckpoints(t, m, b, blob, 128<<10)
	cps := bytes.Clone(b.Layout.Checkpoints)
	// version, kind, raw size, stream length, then the 8-byte trailer.
	i := 2
	for range 2 {
		_, n := binary.Uvarint(cps[i:])
		i += n
	}
	cps[i] ^= 0xff // the CRC32
	l := *b.Layout
	l.Checkpoints = cps
	b.Layout = &l
	a := New(m, m, Options{EncodeParallelism: 2, LayerCache: newLayerCache(t, t.TempDir())})
	defer a.Close()
	var ok bool
	for attempt := range 2 {
		got, err := readRange(t, a, b, 0, b.Size)
		if err == nil && !bytes.Equal(got, blob) {
			t.Fatalf("attempt %d: wrong bytes with no error", attempt)
		}
		if err == nil {
			ok = true
			break
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	if !ok {
		t.Fatal("the layer was never served right")
	}
	if st := a.Stats(); st.BadPlans != 1 {
		t.Fatalf("stats %+v: want the bad checkpoints counted once", st)
	}
	if got, err := readRange(t, a, b, 0, b.Size); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("hot pull after the fallback: %v", err)
	}
}

// Only reads that a digest check covers leave out the chunks' hashes: a
// whole blob, opaque or layer (through a fill or not). Ranges, tars and
// ChunkReaderAt ask the store to hash every chunk.
func TestChunkHashesSkippedOnlyUnderADigest(t *testing.T) {
	m := newMem()
	layer, blob := testLayer(t, m, 11, 40)
	layer = withCheckpoints(t, m, layer, blob, 128<<10)
	opaqueData := payload(50000)
	om, opaque := split(opaqueData, 1000)
	reads := func(m *memChunks, f func()) (hashed, unhashed int) {
		m.mu.Lock()
		m.hashed, m.unhashed = 0, 0
		m.mu.Unlock()
		f()
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.hashed, m.unhashed
	}
	read := func(a *Assembler, b Blob, off, n int64, want []byte) func() {
		return func() {
			if got, err := readRange(t, a, b, off, n); err != nil || !bytes.Equal(got, want[off:off+n]) {
				t.Fatalf("%s %d+%d: %v, equal %v", b.Digest, off, n, err, bytes.Equal(got, want[off:off+n]))
			}
		}
	}
	a := New(om, om, Options{})
	if h, u := reads(om, read(a, opaque, 0, opaque.Size, opaqueData)); h != 0 || u == 0 {
		t.Errorf("whole opaque blob: %d hashed, %d unhashed reads; want all unhashed", h, u)
	}
	if h, u := reads(om, read(a, opaque, 10, 20000, opaqueData)); h == 0 || u != 0 {
		t.Errorf("opaque range: %d hashed, %d unhashed reads; want all hashed", h, u)
	}
	if h, u := reads(om, func() {
		if _, err := a.ChunkReaderAt(context.Background(), opaque.Digest, opaque.Chunks).ReadAt(make([]byte, 5000), 100); err != nil {
			t.Fatal(err)
		}
	}); h == 0 || u != 0 {
		t.Errorf("ChunkReaderAt: %d hashed, %d unhashed reads; want all hashed", h, u)
	}
	for _, cached := range []bool{false, true} {
		o := Options{EncodeParallelism: 2}
		if cached {
			o.LayerCache = newLayerCache(t, t.TempDir())
		}
		a := New(m, m, o)
		if h, u := reads(m, read(a, layer, layer.Size/2, 4096, blob)); h == 0 || u != 0 {
			t.Errorf("cache %v: cold range from a checkpoint: %d hashed, %d unhashed reads; want all hashed", cached, h, u)
		}
		if h, u := reads(m, read(a, layer, 0, layer.Size, blob)); h != 0 || u == 0 {
			t.Errorf("cache %v: whole layer: %d hashed, %d unhashed reads; want all unhashed", cached, h, u)
		}
		if h, u := reads(m, func() {
			r, err := a.OpenTar(context.Background(), layer.Digest, layer.Chunks, layer.Layout.HeaderChunks)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
		}); h == 0 || u != 0 {
			t.Errorf("cache %v: OpenTar: %d hashed, %d unhashed reads; want all hashed", cached, h, u)
		}
		a.Close()
	}
}
