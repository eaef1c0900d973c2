package chunkstore

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/restic/chunker"
)

const benchBlobSize = 256 << 20

// benchBlob returns 256 MiB of pseudo-random bytes in which a quarter of
// every 16 MiB segment repeats an earlier region, so that an ingest sees
// some repeated chunks but little compressible data.
func benchBlob() []byte {
	blob := randomBytes(0xb10b, benchBlobSize)
	g := splitmix64(0x5e9)
	const seg, rep = 16 << 20, 4 << 20
	for s := seg; s < len(blob); s += seg {
		src := int(g.next() % uint64(s-rep))
		dst := s + int(g.next()%uint64(seg-rep))
		copy(blob[dst:dst+rep], blob[src:src+rep])
	}
	return blob
}

// benchTar returns a ~256 MiB tar stream of text-like files of assorted
// sizes: compressible, like the uncompressed layers the store chunks.
func benchTar() []byte {
	var buf bytes.Buffer
	buf.Grow(benchBlobSize + 1<<20)
	tw := tar.NewWriter(&buf)
	g := splitmix64(0x7a7)
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; buf.Len() < benchBlobSize-(1<<20); i++ {
		size := int(g.next()%(256<<10)) + 1
		if g.next()%16 == 0 {
			size = int(g.next() % (4 << 20)) // a few large files
		}
		hdr := &tar.Header{Name: fmt.Sprintf("usr/share/file%06d.txt", i), Mode: 0o644, Size: int64(size), ModTime: mtime, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			panic(err)
		}
		if _, err := tw.Write(textBytes(g.next(), size)); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// BenchmarkIngest measures Store.Write of a 256 MiB blob with the default
// chunk sizes and pack size into a local store: chunking, sha256, zstd,
// pack appends, seals and fsyncs.
func BenchmarkIngest(b *testing.B) {
	inputs := []struct {
		name  string
		data  func() []byte
		known bool // every chunk already known: chunking and hashing only
	}{
		{"random", benchBlob, false},
		{"random-known", benchBlob, true},
		{"tar-text", benchTar, false},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			data := in.data()
			s, err := Open(context.Background(), Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			known := func(ID) bool { return in.known }
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			var chunks []Chunk
			for range b.N {
				chunks, _, err = s.Write(context.Background(), bytes.NewReader(data), known)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			var stored int64
			for _, l := range locations(chunks, nil) {
				stored += int64(l.StoredLen) // each stored chunk once
			}
			b.ReportMetric(float64(len(chunks)), "chunks")
			b.ReportMetric(float64(stored)/float64(len(data)), "stored/raw")
		})
	}
}

// BenchmarkSHA256 is the hashing baseline: sha256 of the same 256 MiB.
func BenchmarkSHA256(b *testing.B) {
	data := benchBlob()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = sha256.Sum256(data)
	}
}

// BenchmarkChunker is the chunking baseline: the bare restic chunker with
// the default sizes over the same 256 MiB, no hashing, no store.
func BenchmarkChunker(b *testing.B) {
	data := benchBlob()
	buf := make([]byte, DefaultMaxChunk)
	c := chunker.NewWithBoundaries(nil, testPol, DefaultMinChunk, DefaultMaxChunk)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c.ResetWithBoundaries(bytes.NewReader(data), testPol, DefaultMinChunk, DefaultMaxChunk)
		c.SetAverageBits(DefaultAverageBits)
		n := 0
		for {
			ch, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += int(ch.Length)
		}
		if n != len(data) {
			b.Fatalf("chunked %d bytes, want %d", n, len(data))
		}
	}
}
