package refgraph

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestConvertBlob(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("layer.tar.gz")
	if err := g.CommitLayerCandidate("r", d, 300, written("p1", "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if q, _ := g.Queued(10); len(q) != 1 || q[0] != d {
		t.Fatalf("queue = %v", q)
	}
	// Pushing it again to another repo does not queue it twice.
	if err := g.CommitLayerCandidate("r2", d, 300, deduped("a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.PendingConversions != 1 {
		t.Fatalf("pending = %d", st.PendingConversions)
	}
	// Converted: a header chunk h, content chunks b (kept) and x (new).
	layout := Layout{HeaderChunks: 1, TarSize: 400, Encoding: []byte(`{"Format":"gzip"}`)}
	newChunks := append(written("p2", "h", "x"), deduped("b")...)
	if err := g.ConvertBlob(d, newChunks, layout); err != nil {
		t.Fatal(err)
	}
	b, err := g.Blob(d)
	if err != nil || b.Kind != KindLayer || b.Layout.HeaderChunks != 1 || string(b.Layout.Encoding) != `{"Format":"gzip"}` || len(b.Chunks) != 3 {
		t.Fatalf("blob = %+v, %v", b, err)
	}
	mustRefs(t, g, d, 2)
	mustChunkRefs(t, g, "a", 0) // dead but still indexed for readers in flight
	mustChunkRefs(t, g, "c", 0)
	mustChunkRefs(t, g, "b", 1)
	mustChunkRefs(t, g, "h", 1)
	st := g.Stats()
	if st.PendingConversions != 0 || st.ConvertedBlobs != 1 || st.Chunks != 3 || st.LiveStoredBytes != 150 || st.PackBytes != 250 {
		t.Fatalf("stats = %+v", st)
	}
	if q, _ := g.Queued(10); len(q) != 0 {
		t.Fatalf("queue after conversion = %v", q)
	}
	// A second conversion finds nothing to do.
	if err := g.ConvertBlob(d, written("p3", "y"), layout); !errors.Is(err, ErrNotOpaque) {
		t.Fatalf("second conversion: %v", err)
	}
	// A push that dedups against a dead chunk brings it back to life.
	if err := g.CommitBlob("r", digest.FromString("other"), 100, deduped("a")); err != nil {
		t.Fatal(err)
	}
	mustChunkRefs(t, g, "a", 1)
	if st := g.Stats(); st.Chunks != 4 {
		t.Fatalf("chunks after resurrection = %d", st.Chunks)
	}
}

func TestGiveUpConversion(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("not a layer")
	if err := g.CommitLayerCandidate("r", d, 100, written("p1", "a")); err != nil {
		t.Fatal(err)
	}
	if err := g.GiveUpConversion(d, written("p2", "junk")); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	if st.PendingConversions != 0 || st.PackBytes != 100 || st.LiveStoredBytes != 50 {
		t.Fatalf("stats = %+v", st)
	}
	if b, _ := g.Blob(d); b.Kind != KindOpaque {
		t.Fatalf("kind = %d", b.Kind)
	}
}
