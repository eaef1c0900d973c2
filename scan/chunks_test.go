package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// locator is the index's chunk table for a test.
type locator map[chunkstore.ID]chunkstore.Location

func (l locator) Chunk(id chunkstore.ID) (refgraph.Chunk, error) {
	loc, ok := l[id]
	if !ok {
		return refgraph.Chunk{}, refgraph.ErrNotFound
	}
	return refgraph.Chunk{ID: id, Loc: loc}, nil
}

// The split view over a real chunk store, as the server reads a split
// layer: the content stream's chunks through assembler.ChunkReaderAt.
// Only the chunks holding the selected files are fetched, and the
// inventory is the one of the in-memory split.
func TestSplitLayerOverChunkStore(t *testing.T) {
	ctx := context.Background()
	store, err := chunkstore.Open(ctx, chunkstore.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// The real Debian python layer, with data files around it.
	big := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{7}).Read(big)
	es := []entry{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "opt/data/a.bin", Mode: 0o644}, body: big},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "opt/data/b.bin", Mode: 0o644}, body: big[1:]},
	}
	tb := concatTars(t, makeTar(t, es[:1]), tarDir(t, filepath.Join("testdata", "images", "debian-python")), makeTar(t, es[1:]))
	var h, c bytes.Buffer
	if _, err := tarsplit.Split(bytes.NewReader(tb), &h, &c); err != nil {
		t.Fatal(err)
	}
	chunks, _, err := store.Write(ctx, bytes.NewReader(c.Bytes()), func(chunkstore.ID) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	loc := locator{}
	var refs []refgraph.ChunkRef
	for _, ch := range chunks {
		if ch.Loc != nil {
			loc[ch.ID] = *ch.Loc
		}
		refs = append(refs, refgraph.ChunkRef{ID: ch.ID, RawLen: ch.RawLen})
	}
	a := assembler.New(loc, store, assembler.Options{})
	content := a.ChunkReaderAt(ctx, digest.FromBytes(tb), refs)
	inv, err := Analyze(ctx, &SplitLayer{Headers: bytes.NewReader(h.Bytes()), Content: content}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := analyzeBoth(t, tb, Options{})
	ga, gb := *inv, *want
	ga.Stats, gb.Stats = ReadStats{}, ReadStats{}
	if mustJSON(t, ga) != mustJSON(t, gb) {
		t.Errorf("over the chunk store:\n%s\nin memory:\n%s", mustJSON(t, ga), mustJSON(t, gb))
	}
	st := inv.Stats
	if st.StoreRead < st.ContentRead || st.StoreRead == 0 || st.StoreRead > int64(c.Len())/4 {
		t.Errorf("fetched %d chunk bytes for %d content bytes of a %d-byte content stream", st.StoreRead, st.ContentRead, c.Len())
	}
	t.Logf("%d chunks; read %d content bytes, fetched %d chunk bytes, of %d uncompressed", len(chunks), st.ContentRead, st.StoreRead, st.Uncompressed)
}

// concatTars joins tars' entries into one tar.
func concatTars(t *testing.T, tars ...[]byte) []byte {
	t.Helper()
	var es []entry
	for _, tb := range tars {
		tr := tar.NewReader(bytes.NewReader(tb))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			var body bytes.Buffer
			body.ReadFrom(tr)
			es = append(es, entry{hdr: *h, body: body.Bytes()})
		}
	}
	return makeTar(t, es)
}
