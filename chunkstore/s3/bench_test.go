package s3

import (
	"bytes"
	"context"
	"github.com/chunkyard/chunkyard/chunkstore/backendtest"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// BenchmarkPutGet puts a 64 MiB object and reads it back whole, on
// versitygw (multipart, default part size) and, as a baseline, on the local
// backend in the same run.
func BenchmarkPutGet(b *testing.B) {
	const size = 64 << 20
	data := backendtest.RandomBytes(9, size)
	local, err := chunkstore.NewLocalBackend(filepath.Join(b.TempDir(), "packs"))
	if err != nil {
		b.Fatal(err)
	}
	srv := s3test.Start(b)
	opts := testOptions(b, srv, "bench")
	opts.Logger = slog.New(slog.DiscardHandler)
	remote := newBackend(b, opts)

	ctx := context.Background()
	for _, bc := range []struct {
		name    string
		backend chunkstore.Backend
	}{{"local", local}, {"s3", remote}} {
		b.Run(bc.name+"/put", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if err := bc.backend.Put(ctx, "bench", bytes.NewReader(data), size); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/get", func(b *testing.B) {
			if err := bc.backend.Put(ctx, "bench", bytes.NewReader(data), size); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			for b.Loop() {
				rc, err := bc.backend.ReadRange(ctx, "bench", 0, size)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil || n != size {
					b.Fatalf("read %d bytes, %v", n, err)
				}
			}
		})
	}
}
