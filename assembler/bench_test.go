package assembler

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
	"github.com/restic/chunker"
)

const benchSize = 256 << 20

// benchData is 256 MiB of an uncompressed blob: random 32 KiB runs
// alternating with text-like runs, so chunks compress about 1.5x and the
// pull path decompresses as it would for a real tar.
func benchData() []byte {
	b := make([]byte, benchSize)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b)
	words := []byte("the quick brown fox jumps over the lazy dog usr lib share bin etc ")
	for off := 32 << 10; off < len(b); off += 64 << 10 {
		for i := off; i < min(off+32<<10, len(b)); i++ {
			b[i] = words[(i*7+int(b[i])%3)%len(words)]
		}
	}
	return b
}

// storeLocator maps chunk ids to where Write put them.
type storeLocator map[chunkstore.ID]chunkstore.Location

func (l storeLocator) Chunk(id chunkstore.ID) (refgraph.Chunk, error) {
	loc, ok := l[id]
	if !ok {
		return refgraph.Chunk{}, refgraph.ErrNotFound
	}
	return refgraph.Chunk{ID: id, Loc: loc}, nil
}

// BenchmarkPull streams a 256 MiB blob out of a local chunk store: chunk
// reads, zstd decoding, per-chunk and whole-blob sha256 verification.
func BenchmarkPull(b *testing.B) {
	data := benchData()
	ctx := context.Background()
	store, err := chunkstore.Open(ctx, chunkstore.Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	chunks, _, err := store.Write(ctx, bytes.NewReader(data), func(chunkstore.ID) bool { return false })
	if err != nil {
		b.Fatal(err)
	}
	loc := storeLocator{}
	blob := Blob{Digest: digest.FromBytes(data), Size: int64(len(data))}
	for _, c := range chunks {
		if c.Loc != nil {
			loc[c.ID] = *c.Loc
		}
		blob.Chunks = append(blob.Chunks, refgraph.ChunkRef{ID: c.ID, RawLen: c.RawLen})
	}
	asm := New(loc, store, Options{Logger: slog.New(slog.DiscardHandler)})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, err := asm.Open(ctx, blob, 0, blob.Size)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil || n != blob.Size {
			b.Fatalf("pulled %d bytes: %v", n, err)
		}
	}
}

// BenchmarkSHA256 is the baseline: hashing the same 256 MiB once.
func BenchmarkSHA256(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		_ = sha256.Sum256(data)
	}
}

// BenchmarkChunker is the other baseline: the bare restic chunker with the
// store's default sizes over the same bytes.
func BenchmarkChunker(b *testing.B) {
	data := benchData()
	const pol = chunker.Pol(0x3DA3358B4DC173)
	buf := make([]byte, chunkstore.DefaultMaxChunk)
	c := chunker.NewWithBoundaries(nil, pol, chunkstore.DefaultMinChunk, chunkstore.DefaultMaxChunk)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		c.ResetWithBoundaries(bytes.NewReader(data), pol, chunkstore.DefaultMinChunk, chunkstore.DefaultMaxChunk)
		c.SetAverageBits(chunkstore.DefaultAverageBits)
		for {
			if _, err := c.Next(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
