package assembler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// memChunks is an in-memory index and chunk store that counts reads.
type memChunks struct {
	mu      sync.Mutex
	data    map[chunkstore.ID][]byte
	reads   map[chunkstore.ID]int
	corrupt map[chunkstore.ID]bool // served flipped, as a store without verification would
	fail    map[chunkstore.ID]error
	// reads asking for the content hash, and reads leaving it out
	hashed, unhashed int
}

func (m *memChunks) Chunk(id chunkstore.ID) (refgraph.Chunk, error) {
	b, ok := m.data[id]
	if !ok {
		return refgraph.Chunk{}, refgraph.ErrNotFound
	}
	return refgraph.Chunk{ID: id, Loc: chunkstore.Location{RawLen: uint32(len(b))}}, nil
}

func (m *memChunks) ReadChunks(ctx context.Context, reqs []chunkstore.ChunkRead, dsts [][]byte) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]byte, len(reqs))
	for i, r := range reqs {
		m.reads[r.ID]++
		if r.SkipHash {
			m.unhashed++
		} else {
			m.hashed++
		}
		if err := m.fail[r.ID]; err != nil {
			return nil, err
		}
		out[i] = append(dsts[i][:0], m.data[r.ID]...)
		if m.corrupt[r.ID] {
			out[i][0] ^= 0xff
		}
	}
	return out, nil
}

// split cuts data into chunks of the given sizes (cycled).
func split(data []byte, sizes ...int) (*memChunks, Blob) {
	m := &memChunks{data: map[chunkstore.ID][]byte{}, reads: map[chunkstore.ID]int{},
		corrupt: map[chunkstore.ID]bool{}, fail: map[chunkstore.ID]error{}}
	b := Blob{Digest: digest.FromBytes(data), Size: int64(len(data))}
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		id := chunkstore.ID(sha256.Sum256(data[:n]))
		m.data[id] = data[:n]
		b.Chunks = append(b.Chunks, refgraph.ChunkRef{ID: id, RawLen: uint32(n)})
		data = data[n:]
	}
	return m, b
}

func payload(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

func TestReadWhole(t *testing.T) {
	data := payload(10000)
	m, b := split(data, 1000, 3000, 7)
	got, err := io.ReadAll(must(New(m, m, Options{}).Open(context.Background(), b, 0, b.Size)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v (equal %v)", err, bytes.Equal(got, data))
	}
}

func must(r io.ReadCloser, err error) io.ReadCloser {
	if err != nil {
		panic(err)
	}
	return r
}

func TestRangesReadOnlyTheirChunks(t *testing.T) {
	data := payload(10000)
	tests := []struct{ off, length int64 }{
		{0, 1}, {999, 2}, {1000, 1000}, {4500, 10}, {9999, 1}, {0, 10000}, {5000, 0}, {3, 9990},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d+%d", tt.off, tt.length), func(t *testing.T) {
			m, b := split(data, 1000)
			r, err := New(m, m, Options{}).Open(context.Background(), b, tt.off, tt.length)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, data[tt.off:tt.off+tt.length]) {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			// Chunks are 1000 bytes: exactly those overlapping the range are read.
			for i, c := range b.Chunks {
				start, end := int64(i*1000), int64(i*1000+1000)
				want := 0
				if tt.length > 0 && start < tt.off+tt.length && end > tt.off {
					want = 1
				}
				if m.reads[c.ID] != want {
					t.Errorf("chunk %d read %d times, want %d", i, m.reads[c.ID], want)
				}
			}
		})
	}
}

func TestCorruptionIsNeverServedSilently(t *testing.T) {
	data := payload(5000)
	m, b := split(data, 1000)
	m.corrupt[b.Chunks[3].ID] = true
	_, err := io.ReadAll(must(New(m, m, Options{}).Open(context.Background(), b, 0, b.Size)))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("whole read of a corrupt blob: %v", err)
	}
	// A chunk whose length disagrees with the recipe.
	m, b = split(data, 1000)
	m.data[b.Chunks[1].ID] = m.data[b.Chunks[1].ID][:999]
	_, err = io.ReadAll(must(New(m, m, Options{}).Open(context.Background(), b, 1500, 10)))
	if !errors.Is(err, chunkstore.ErrCorrupt) {
		t.Fatalf("short chunk: %v", err)
	}
	// A failing chunk read ends the stream with its error.
	m, b = split(data, 1000)
	boom := errors.New("boom")
	m.fail[b.Chunks[4].ID] = boom
	_, err = io.ReadAll(must(New(m, m, Options{}).Open(context.Background(), b, 0, b.Size)))
	if !errors.Is(err, boom) {
		t.Fatalf("failing chunk: %v", err)
	}
}

func TestCloseEarly(t *testing.T) {
	data := payload(100000)
	m, b := split(data, 100)
	r := must(New(m, m, Options{Prefetch: 4}).Open(context.Background(), b, 0, b.Size))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	r.Close() // must not hang or leak the producer
	if _, err := r.Read(buf); err == nil {
		t.Fatal("read after close succeeded")
	}
}

func TestBadRange(t *testing.T) {
	m, b := split(payload(100), 10)
	for _, rg := range [][2]int64{{-1, 5}, {0, 101}, {100, 1}, {50, -1}} {
		if _, err := New(m, m, Options{}).Open(context.Background(), b, rg[0], rg[1]); err == nil {
			t.Errorf("range %v accepted", rg)
		}
	}
}
