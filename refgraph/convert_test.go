package refgraph

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPendingToLayer(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("layer.tar.gz")
	if created, err := g.CommitPending("r", d, 300); err != nil || !created {
		t.Fatalf("commit pending: %v %v", created, err)
	}
	if q, _ := g.Queued(10); len(q) != 1 || q[0] != d {
		t.Fatalf("queue = %v", q)
	}
	// Pushed again to another repo: linked, not queued twice.
	if created, err := g.CommitPending("r2", d, 300); err != nil || created {
		t.Fatalf("second commit pending: %v %v", created, err)
	}
	mustRefs(t, g, d, 2)
	if st := g.Stats(); st.PendingConversions != 1 || st.PendingBytes != 300 || st.Blobs != 1 || st.LogicalBytes != 300 {
		t.Fatalf("stats = %+v", st)
	}
	if b, _ := g.Blob(d); b.Kind != KindPending || len(b.Chunks) != 0 {
		t.Fatalf("pending blob = %+v", b)
	}
	// A chunk "b" is already indexed for another blob.
	if err := g.CommitBlob("r", digest.FromString("other"), 100, written("p0", "b")); err != nil {
		t.Fatal(err)
	}
	const recipe = `{"Format":"gzip","Encoder":"klauspost-zstd","Version":"v9"}`
	layout := &Layout{HeaderChunks: 1, TarSize: 400, Encoding: []byte(recipe)}
	if err := g.ConvertBlob(d, append(written("p1", "h", "x"), deduped("b")...), layout); err != nil {
		t.Fatal(err)
	}
	if enc, err := g.Encodings(); err != nil || len(enc) != 1 || enc["klauspost-zstd v9"] != 1 {
		t.Fatalf("encodings = %v, %v", enc, err)
	}
	b, err := g.Blob(d)
	if err != nil || b.Kind != KindLayer || b.Layout.HeaderChunks != 1 || string(b.Layout.Encoding) != recipe || len(b.Chunks) != 3 {
		t.Fatalf("blob = %+v, %v", b, err)
	}
	mustRefs(t, g, d, 2)
	mustChunkRefs(t, g, "b", 2)
	st := g.Stats()
	if st.PendingConversions != 0 || st.PendingBytes != 0 || st.ConvertedBlobs != 1 || st.Chunks != 3 || st.SharedChunks != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if q, _ := g.Queued(10); len(q) != 0 {
		t.Fatalf("queue after conversion = %v", q)
	}
	if err := g.ConvertBlob(d, written("p3", "y"), layout); !errors.Is(err, ErrNotOpaque) {
		t.Fatalf("second conversion: %v", err)
	}
}

func TestOpaqueToLayerDropsOldChunks(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("opaque layer")
	if err := g.CommitBlob("r", d, 300, written("p1", "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	layout := &Layout{HeaderChunks: 1, TarSize: 400, Encoding: []byte(`{}`)}
	if err := g.ConvertBlob(d, append(written("p2", "h"), deduped("b")...), layout); err != nil {
		t.Fatal(err)
	}
	mustChunkRefs(t, g, "a", 0) // dead but still indexed for readers in flight
	mustChunkRefs(t, g, "b", 1)
	st := g.Stats()
	if st.Chunks != 2 || st.LiveStoredBytes != 100 || st.PackBytes != 200 {
		t.Fatalf("stats = %+v", st)
	}
	// A push that dedups against a dead chunk brings it back to life.
	if err := g.CommitBlob("r", digest.FromString("other"), 100, deduped("a")); err != nil {
		t.Fatal(err)
	}
	mustChunkRefs(t, g, "a", 1)
	if st := g.Stats(); st.Chunks != 3 {
		t.Fatalf("chunks after resurrection = %d", st.Chunks)
	}
}

func TestPendingToOpaque(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("not a layer")
	g.CommitPending("r", d, 100)
	if err := g.ConvertBlob(d, written("p1", "a"), nil); err != nil {
		t.Fatal(err)
	}
	b, _ := g.Blob(d)
	if b.Kind != KindOpaque || len(b.Chunks) != 1 {
		t.Fatalf("blob = %+v", b)
	}
	if st := g.Stats(); st.PendingConversions != 0 || st.PendingBytes != 0 || st.ConvertedBlobs != 0 {
		t.Fatalf("stats = %+v", st)
	}
}
