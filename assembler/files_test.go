package assembler

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
)

func TestChunkReaderAt(t *testing.T) {
	data := payload(1<<20 + 12345)
	m, b := split(data, 64<<10, 100<<10, 3000)
	a := New(m, m, Options{})
	r := a.ChunkReaderAt(context.Background(), b.Digest, b.Chunks)
	if r.Size() != int64(len(data)) {
		t.Fatalf("size %d", r.Size())
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		off := rnd.Int64N(int64(len(data)))
		n := rnd.IntN(300 << 10)
		p := make([]byte, n)
		k, err := r.ReadAt(p, off)
		end := min(off+int64(n), int64(len(data)))
		if k != int(end-off) || !bytes.Equal(p[:k], data[off:end]) {
			t.Fatalf("ReadAt(%d, %d) = %d: wrong bytes", n, off, k)
		}
		if (end-off < int64(n)) != (err == io.EOF) || err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d, %d) err %v", n, off, err)
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), int64(len(data))); err != io.EOF {
		t.Errorf("at the end: %v", err)
	}
}

// Small reads in one chunk fetch it once; only the chunks a read
// overlaps are fetched.
func TestChunkReaderAtReadsOnlyItsChunks(t *testing.T) {
	data := payload(10 * 4096)
	m, b := split(data, 4096)
	a := New(m, m, Options{})
	r := a.ChunkReaderAt(context.Background(), b.Digest, b.Chunks)
	p := make([]byte, 16)
	for i := range 100 {
		if _, err := r.ReadAt(p, 5*4096+int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if r.StoreBytesRead() != 4096 {
		t.Errorf("fetched %d bytes for reads inside one chunk", r.StoreBytesRead())
	}
	for id, n := range m.reads {
		if id != b.Chunks[5].ID && n > 0 || id == b.Chunks[5].ID && n != 1 {
			t.Errorf("chunk %v read %d times", id, n)
		}
	}
	// A read across chunks 7..9 fetches those three.
	if _, err := r.ReadAt(make([]byte, 2*4096+10), 7*4096+5); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if r.StoreBytesRead() != 4*4096 {
		t.Errorf("fetched %d bytes, want %d", r.StoreBytesRead(), 4*4096)
	}
}

func TestChunkReaderAtStoreError(t *testing.T) {
	data := payload(5 * 4096)
	m, b := split(data, 4096)
	// The chunk store verifies chunks against their ids and fails a
	// corrupt one; the error reaches the reader.
	m.fail[b.Chunks[2].ID] = chunkstore.ErrCorrupt
	a := New(m, m, Options{})
	r := a.ChunkReaderAt(context.Background(), b.Digest, b.Chunks)
	if _, err := r.ReadAt(make([]byte, 10), 2*4096); !errors.Is(err, chunkstore.ErrCorrupt) {
		t.Errorf("corrupt chunk: got %v, want ErrCorrupt", err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 0); err != nil {
		t.Errorf("good chunk: %v", err)
	}
}
