package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/chunkyard/chunkyard/bench/benchtest"
	"github.com/chunkyard/chunkyard/chunkstore"
)

// TestPricesLikeChunkstore writes chunks through chunkstore, at each
// compression level, and checks that the estimate prices them at what the
// sealed pack holds for them: the same compressed sizes plus ChunkOverhead
// each. MinChunk = MaxChunk cuts at fixed sizes whatever the store's random
// polynomial.
func TestPricesLikeChunkstore(t *testing.T) {
	t.Parallel()
	const size = 256 << 10
	text := benchtest.Files(7, 1, 3*size)[0].Data
	data := append(text, benchtest.Gzip(t, benchtest.Files(8, 1, 2*size)[0].Data, 9)...) // some chunks do not compress
	for _, level := range []chunkstore.Compression{"", chunkstore.CompressFastest, chunkstore.CompressDefault, chunkstore.CompressBetter} {
		t.Run(fmt.Sprintf("%q", level), func(t *testing.T) {
			e := newEstimator(t, Options{MinChunk: size, MaxChunk: size, Compression: level})
			b := newBatch(e.chunkyard)
			if err := e.cut(context.Background(), bytes.NewReader(data), b); err != nil {
				t.Fatal(err)
			}
			est := b.commit().usage()

			ctx := context.Background()
			dir := t.TempDir()
			s, err := chunkstore.Open(ctx, chunkstore.Options{Dir: dir, MinChunk: size, MaxChunk: size,
				Compression: level, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			chunks, _, err := s.Write(ctx, bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var stored int64
			for _, c := range chunks {
				stored += int64(c.Loc.StoredLen)
			}
			if int64(len(chunks)) != est.Chunks || stored != est.StoredBytes || est.StoredBytes >= int64(len(data)) {
				t.Fatalf("chunkstore stored %d chunks in %d bytes; estimate %+v", len(chunks), stored, est)
			}
			var packBytes int64
			filepath.WalkDir(filepath.Join(dir, "packs"), func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					fi, _ := os.Stat(path)
					packBytes += fi.Size()
				}
				return err
			})
			const packHeaderAndFooter = 8 + 16
			if packBytes != est.Bytes+packHeaderAndFooter {
				t.Fatalf("sealed pack of %d bytes, estimate %d + %d", packBytes, est.Bytes, packHeaderAndFooter)
			}
		})
	}
}
