package s3

import (
	"bytes"
	"context"
	"github.com/chunkyard/chunkyard/chunkstore/backendtest"
	"os"
	"path/filepath"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// storeOptions are small-pack Store options on backend b.
func storeOptions(t testing.TB, dir string, b chunkstore.Backend) chunkstore.Options {
	return chunkstore.Options{
		Dir:         dir,
		Backend:     b,
		PackSize:    256 << 10,
		MinChunk:    4 << 10,
		MaxChunk:    64 << 10,
		AverageBits: 14, // 16 KiB
		Logger:      backendtest.Logger(t),
	}
}

func openStore(t testing.TB, opts chunkstore.Options) *chunkstore.Store {
	t.Helper()
	s, err := chunkstore.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func write(t testing.TB, s *chunkstore.Store, data []byte) []chunkstore.Chunk {
	t.Helper()
	chunks, n, err := s.Write(context.Background(), bytes.NewReader(data), nil)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Write = %d bytes, %v; want %d", n, err, len(data))
	}
	return chunks
}

// checkChunks reads chunks back from s and compares them with data.
func checkChunks(t testing.TB, s *chunkstore.Store, chunks []chunkstore.Chunk, data []byte) {
	t.Helper()
	var got []byte
	for _, c := range chunks {
		b, err := s.ReadChunk(context.Background(), *c.Loc, c.ID, nil)
		if err != nil {
			t.Fatalf("ReadChunk %s in %s: %v", c.ID, c.Loc.Pack, err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes differing from the %d written", len(got), len(data))
	}
}

// checkHandedOver checks that the packs of chunks are in the bucket and
// staging/ is empty.
func checkHandedOver(t testing.TB, b *Backend, dir string, chunks []chunkstore.Chunk) {
	t.Helper()
	for _, c := range chunks {
		if !exists(t, b, c.Loc.Pack) {
			t.Fatalf("pack %s not in the bucket", c.Loc.Pack)
		}
	}
	left, err := os.ReadDir(filepath.Join(dir, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d packs left in staging", len(left))
	}
}

func TestStore(t *testing.T) {
	srv := s3test.Start(t)
	b := newBackend(t, testOptions(t, srv, "store"))
	dir := t.TempDir()
	data := backendtest.RandomBytes(3, 2<<20)

	s := openStore(t, storeOptions(t, dir, b))
	chunks := write(t, s, data)
	checkChunks(t, s, chunks, data)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkHandedOver(t, b, dir, chunks)
	objects, _, err := b.Usage(context.Background())
	if err != nil || objects < 8 { // 2 MiB in packs of 256 KiB
		t.Fatalf("Usage = %d objects, %v; want at least 8", objects, err)
	}

	s = openStore(t, storeOptions(t, dir, b))
	defer s.Close()
	checkChunks(t, s, chunks, data)
	st, err := s.Stats(context.Background())
	if err != nil || st.Packs != objects || st.OpenPacks != 0 {
		t.Fatalf("Stats = %+v, %v; want %d packs, none open", st, err, objects)
	}
}
