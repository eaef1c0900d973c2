package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// benchLayer is a ~64 MiB rootfs-like tar, gzip level 6 as docker and
// BuildKit write it.
func benchLayer(b *testing.B) (tar, blob []byte) {
	tar = rootfsN(b, 320, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return tar, gzipped(b, tar, 6)
}

// BenchmarkLayerPull pulls a split layer: cold (re-encoded every time, no
// layer cache) and hot (from the layer cache), next to the bare stdlib
// gzip encode of the same tar, the floor of a cold pull. MB/s are of the
// compressed blob.
func BenchmarkLayerPull(b *testing.B) {
	tar, blob := benchLayer(b)
	for _, hot := range []bool{false, true} {
		name := "cold"
		if hot {
			name = "hot"
		}
		b.Run(name, func(b *testing.B) {
			e := newConvertEnv(b, ConvertOptions{})
			if hot {
				e.close()
				var err error
				if e.layers, err = chunkstore.OpenFileCache(filepath.Join(e.dir, "layers"), 1<<30, nil); err != nil {
					b.Fatal(err)
				}
				e.open()
			}
			d := e.pushBlob("app", blob)
			e.drain()
			if rec, _ := e.graph.Blob(d); rec.Kind != refgraph.KindLayer {
				b.Fatalf("layer not converted: kind %d", rec.Kind)
			}
			if hot {
				pullDiscard(b, e, d) // fills the cache
			}
			b.SetBytes(int64(len(blob)))
			b.ResetTimer()
			for range b.N {
				pullDiscard(b, e, d)
			}
		})
	}
	b.Run("baseline-gzip6-encode", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			w, _ := gzip.NewWriterLevel(io.Discard, 6)
			w.Write(tar)
			w.Close()
		}
	})
}

func pullDiscard(b *testing.B, e *env, d digest.Digest) {
	rc, _, err := e.svc.OpenBlob(context.Background(), "app", d, 0, -1)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n == 0 {
		b.Fatalf("pulled %d bytes: %v", n, err)
	}
}

// BenchmarkConvert measures the background conversion of one layer
// (decompress, find the encoder, split, chunk, verify) next to one stdlib
// gzip level 6 encode of the same tar.
func BenchmarkConvert(b *testing.B) {
	tar, blob := benchLayer(b)
	b.Run("convert", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			b.StopTimer()
			e := newConvertEnv(b, ConvertOptions{})
			e.pushBlob("app", blob)
			b.StartTimer()
			e.drain()
		}
	})
	b.Run("baseline-gzip6-encode", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			var out bytes.Buffer
			w, _ := gzip.NewWriterLevel(&out, 6)
			w.Write(tar)
			w.Close()
		}
	})
}
