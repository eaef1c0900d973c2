package chunkstore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// countingBackend counts range reads, like the requests an S3 backend
// would make.
type countingBackend struct {
	Backend
	reads atomic.Int64
}

func (b *countingBackend) ReadRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.reads.Add(1)
	return b.Backend.ReadRange(ctx, name, off, length)
}

// sealedStore writes data into a store with small chunks and packs,
// closes it (sealing every pack) and reopens it over a counting backend.
func sealedStore(t *testing.T, data []byte, cacheSize int64) (*Store, *countingBackend, []ChunkRead) {
	t.Helper()
	dir := t.TempDir()
	lb, err := NewLocalBackend(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBackend{Backend: lb}
	opts := smallOpts(t, filepath.Join(dir, "store"))
	opts.Backend = cb
	opts.ReadCacheSize = cacheSize
	s := openStore(t, opts)
	chunks := mustWrite(t, s, data, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	t.Cleanup(func() { s.Close() })
	locs := locations(chunks, nil)
	reqs := make([]ChunkRead, len(chunks))
	for i, c := range chunks {
		reqs[i] = ChunkRead{ID: c.ID, Loc: locs[c.ID]}
	}
	cb.reads.Store(0)
	return s, cb, reqs
}

func readChunks(t *testing.T, s *Store, reqs []ChunkRead) []byte {
	t.Helper()
	out, err := s.ReadChunks(context.Background(), reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Join(out, nil)
}

func TestReadChunksCoalesces(t *testing.T) {
	data := append(randomBytes(60, 1<<20), textBytes(61, 1<<20)...)
	s, cb, reqs := sealedStore(t, data, 0)
	if got := readChunks(t, s, reqs); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch")
	}
	// Records sit back to back in 256 KiB packs and a coalesced read spans
	// up to MaxChunk (64 KiB) bytes: far fewer requests than chunks.
	packs := 0
	s.ListPacks(context.Background(), func(string, int64) error { packs++; return nil })
	n := cb.reads.Load()
	if n >= int64(len(reqs)) || n > int64(2*packs+int(len(data)/(64<<10))) {
		t.Fatalf("%d range reads for %d chunks in %d packs", n, len(reqs), packs)
	}
	t.Logf("%d chunks, %d packs, %d range reads", len(reqs), packs, n)

	// Out of order and repeated requests still come back right.
	mixed := []ChunkRead{reqs[3], reqs[1], reqs[1], reqs[len(reqs)-1], reqs[0]}
	out, err := s.ReadChunks(context.Background(), mixed, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range mixed {
		got, _ := s.ReadChunk(context.Background(), r.Loc, r.ID, nil)
		if !bytes.Equal(out[i], got) {
			t.Fatalf("mixed read %d differs", i)
		}
	}
}

func TestReadCache(t *testing.T) {
	data := randomBytes(70, 1<<20)
	s, cb, reqs := sealedStore(t, data, 4<<20)
	readChunks(t, s, reqs)
	first := cb.reads.Load()
	if got := readChunks(t, s, reqs); !bytes.Equal(got, data) {
		t.Fatal("cached read mismatch")
	}
	if n := cb.reads.Load() - first; n != 0 {
		t.Fatalf("second read made %d backend requests, want 0", n)
	}
	st, _ := s.Stats(context.Background())
	if st.CacheEntries != len(reqs) || st.CacheBytes < int64(len(data))/2 {
		t.Fatalf("cache usage %d entries, %d bytes", st.CacheEntries, st.CacheBytes)
	}
	// A corrupt cache entry is dropped and read again from the backend.
	key := cacheKey(reqs[2].Loc)
	path := filepath.Join(s.cache.dir, key)
	b, _ := os.ReadFile(path)
	b[len(b)-1] ^= 1
	os.WriteFile(path, b, 0o600)
	before := cb.reads.Load()
	if got := readChunks(t, s, reqs); !bytes.Equal(got, data) {
		t.Fatal("read with a corrupt cache entry mismatch")
	}
	if cb.reads.Load() != before+1 {
		t.Fatalf("corrupt entry: %d backend reads, want 1", cb.reads.Load()-before)
	}
}

func TestReadCacheBounded(t *testing.T) {
	data := randomBytes(80, 1<<20)
	const max = 200 << 10
	s, _, reqs := sealedStore(t, data, max)
	readChunks(t, s, reqs)
	st, _ := s.Stats(context.Background())
	if st.CacheBytes > max || st.CacheEntries == 0 {
		t.Fatalf("cache holds %d bytes in %d entries, bound %d", st.CacheBytes, st.CacheEntries, max)
	}
	var onDisk int64
	entries, _ := os.ReadDir(s.cache.dir)
	for _, e := range entries {
		info, _ := e.Info()
		onDisk += info.Size()
	}
	if onDisk != st.CacheBytes {
		t.Fatalf("cache dir holds %d bytes, index says %d", onDisk, st.CacheBytes)
	}
	// Reopening keeps what fits.
	c, err := OpenFileCache(s.cache.dir, max/2, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n, size := c.Usage(); size > max/2 || n == 0 {
		t.Fatalf("reopened cache: %d entries, %d bytes", n, size)
	}
}
