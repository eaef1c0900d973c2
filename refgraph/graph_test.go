package refgraph

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

func openTest(t *testing.T) *Graph {
	t.Helper()
	g, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func chunkID(s string) chunkstore.ID { return chunkstore.ID(sha256.Sum256([]byte(s))) }

// written returns chunks as a push that wrote them all into pack.
func written(pack string, names ...string) []chunkstore.Chunk {
	var out []chunkstore.Chunk
	locs := map[string]*chunkstore.Location{}
	for i, n := range names {
		if locs[n] == nil {
			locs[n] = &chunkstore.Location{Pack: pack, Offset: int64(i * 100), StoredLen: 50, RawLen: 100, Compressed: true}
		}
		out = append(out, chunkstore.Chunk{ID: chunkID(n), RawLen: 100, Loc: locs[n]})
	}
	return out
}

// deduped returns chunks as a push that found them all indexed.
func deduped(names ...string) []chunkstore.Chunk {
	var out []chunkstore.Chunk
	for _, n := range names {
		out = append(out, chunkstore.Chunk{ID: chunkID(n), RawLen: 100})
	}
	return out
}

func mustRefs(t *testing.T, g *Graph, d digest.Digest, want int64) {
	t.Helper()
	b, err := g.Blob(d)
	if err != nil {
		t.Fatal(err)
	}
	if b.Refs != want {
		t.Fatalf("blob %s refs = %d, want %d", d, b.Refs, want)
	}
}

func mustChunkRefs(t *testing.T, g *Graph, name string, want int64) {
	t.Helper()
	c, err := g.Chunk(chunkID(name))
	if err != nil {
		t.Fatal(err)
	}
	if c.Refs != want {
		t.Fatalf("chunk %s refs = %d, want %d", name, c.Refs, want)
	}
}

func TestCommitBlobCounts(t *testing.T) {
	g := openTest(t)
	a := digest.FromString("a")
	b := digest.FromString("b")
	if err := g.CommitBlob("r1", a, 300, written("p1", "x", "y", "x")); err != nil {
		t.Fatal(err)
	}
	mustRefs(t, g, a, 1)
	mustChunkRefs(t, g, "x", 2) // occurrences, not unique chunks
	mustChunkRefs(t, g, "y", 1)
	// The same blob into a second repo: one more ref, no new chunks.
	if err := g.CommitBlob("r2", a, 300, deduped("x", "y", "x")); err != nil {
		t.Fatal(err)
	}
	mustRefs(t, g, a, 2)
	mustChunkRefs(t, g, "x", 2)
	// A second blob sharing a chunk.
	if err := g.CommitBlob("r2", b, 200, append(deduped("y"), written("p1", "z")...)); err != nil {
		t.Fatal(err)
	}
	mustChunkRefs(t, g, "y", 2)
	st := g.Stats()
	want := Stats{Repos: 2, Blobs: 2, LogicalBytes: 500, LinkedBytes: 800, Chunks: 3, SharedChunks: 2,
		ChunkRawBytes: 300, LiveStoredBytes: 150, Packs: 1, PackBytes: 150}
	if st != want {
		t.Fatalf("stats = %+v\nwant    %+v", st, want)
	}
	var packs []Pack
	g.Packs(func(p Pack) error { packs = append(packs, p); return nil })
	if len(packs) != 1 || packs[0].TotalBytes != 150 || packs[0].LiveBytes != 150 || packs[0].LiveChunks != 3 {
		t.Fatalf("packs = %+v", packs)
	}
}

func TestCommitBlobChunkMissing(t *testing.T) {
	g := openTest(t)
	err := g.CommitBlob("r", digest.FromString("a"), 100, deduped("gone"))
	if !errors.Is(err, ErrChunkMissing) {
		t.Fatalf("err = %v, want ErrChunkMissing", err)
	}
	if _, err := g.Blob(digest.FromString("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed commit left a blob: %v", err)
	}
	if st := g.Stats(); st != (Stats{}) {
		t.Fatalf("a failed commit moved counters: %+v", st)
	}
}

func TestLinksAndMount(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("layer")
	if err := g.LinkBlob("r2", d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mount of unknown blob: %v", err)
	}
	if err := g.CommitBlob("r1", d, 100, written("p", "c")); err != nil {
		t.Fatal(err)
	}
	if err := g.LinkBlob("r2", d); err != nil {
		t.Fatal(err)
	}
	if err := g.LinkBlob("r2", d); err != nil { // idempotent
		t.Fatal(err)
	}
	mustRefs(t, g, d, 2)
	if ok, _ := g.Linked("r3", d); ok {
		t.Fatal("r3 sees a blob never pushed there")
	}
	if err := g.UnlinkBlob("r1", d); err != nil {
		t.Fatal(err)
	}
	if err := g.UnlinkBlob("r1", d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second unlink: %v", err)
	}
	mustRefs(t, g, d, 1)
}

func TestManifestsTagsReferrers(t *testing.T) {
	g := openTest(t)
	now := time.Now().UTC()
	img := Manifest{Digest: digest.FromString("img"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 10, Pushed: now}
	sig := Manifest{Digest: digest.FromString("sig"), MediaType: img.MediaType, Size: 11, Subject: img.Digest,
		ArtifactType: "application/vnd.example.sig", Pushed: now}
	if err := g.PutManifest("r", img, "v1", written("p", "img")); err != nil {
		t.Fatal(err)
	}
	if err := g.PutManifest("r", img, "v2", nil); err != nil {
		t.Fatal(err)
	}
	if err := g.PutManifest("r", sig, "", written("p", "sig")); err != nil {
		t.Fatal(err)
	}
	mustRefs(t, g, img.Digest, 1)
	tags, more, err := g.Tags("r", "", 1)
	if err != nil || more != true || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("page 1 = %v %v %v", tags, more, err)
	}
	tags, more, _ = g.Tags("r", "v1", 1)
	if more || len(tags) != 1 || tags[0] != "v2" {
		t.Fatalf("page 2 = %v %v", tags, more)
	}
	refs, err := g.Referrers("r", img.Digest)
	if err != nil || len(refs) != 1 || refs[0].Digest != sig.Digest || refs[0].ArtifactType != sig.ArtifactType {
		t.Fatalf("referrers = %+v %v", refs, err)
	}
	if err := g.DeleteTag("r", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteManifest("r", img.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ResolveTag("r", "v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tag of deleted manifest: %v", err)
	}
	mustRefs(t, g, img.Digest, 0)
	if err := g.DeleteManifest("r", sig.Digest); err != nil {
		t.Fatal(err)
	}
	if refs, _ := g.Referrers("r", img.Digest); len(refs) != 0 {
		t.Fatalf("referrers after delete = %+v", refs)
	}
	repos, _, _ := g.Repos("", -1)
	if len(repos) != 1 || repos[0] != "r" {
		t.Fatalf("repos = %v", repos)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	g, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("a")
	if err := g.CommitBlob("r", d, 100, written("p", "c")); err != nil {
		t.Fatal(err)
	}
	want := g.Stats()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := g.Stats(); got != want {
		t.Fatalf("stats after reopen = %+v, want %+v", got, want)
	}
	mustRefs(t, g, d, 1)
}

func TestBlobRecordCodec(t *testing.T) {
	v := blobValue{size: 1 << 40, refs: 7, chunks: []ChunkRef{{ID: chunkID("a"), RawLen: 1}, {ID: chunkID("b"), RawLen: 1 << 23}}}
	got, err := decodeBlob(v.encode())
	if err != nil || got.size != v.size || got.refs != v.refs || len(got.chunks) != 2 || got.chunks[1] != v.chunks[1] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := range v.encode() {
		if _, err := decodeBlob(v.encode()[:i]); err == nil {
			t.Fatalf("truncated record of %d bytes decoded", i)
		}
	}
}

// TestLayerRecordCodec: a layer's checkpoints survive the record, and a
// record of the version before them (no checkpoints) still decodes.
func TestLayerRecordCodec(t *testing.T) {
	layout := &Layout{HeaderChunks: 1, TarSize: 5000, Encoding: []byte(`{"Format":"gzip"}`), Checkpoints: []byte{1, 'd', 7, 8, 9}}
	v := blobValue{size: 100, refs: 1, kind: KindLayer, chunks: []ChunkRef{{ID: chunkID("a"), RawLen: 1}}, layout: layout}
	got, err := decodeBlob(v.encode())
	if err != nil || !bytes.Equal(got.layout.Checkpoints, layout.Checkpoints) || string(got.layout.Encoding) != string(layout.Encoding) {
		t.Fatalf("round trip: %+v %v", got.layout, err)
	}
	for i := range v.encode() {
		if _, err := decodeBlob(v.encode()[:i]); err == nil {
			t.Fatalf("truncated record of %d bytes decoded", i)
		}
	}
	// Version 2: the same record without the checkpoints' length and bytes.
	v.layout = &Layout{HeaderChunks: 1, TarSize: 5000, Encoding: layout.Encoding}
	v2 := v.encode()
	v2 = v2[:len(v2)-1] // the empty checkpoints' length
	v2[0] = 2
	got, err = decodeBlob(v2)
	if err != nil || got.layout.Checkpoints != nil || got.layout.TarSize != 5000 {
		t.Fatalf("version 2 record: %+v %v", got.layout, err)
	}
}
