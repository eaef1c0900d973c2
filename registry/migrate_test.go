package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestMigrateRefs: a manifest stored without its references (as an older
// chunkyard did) gets them, with use counts, once.
func TestMigrateRefs(t *testing.T) {
	e := newEnv(t)
	cfg := e.pushBlob("app", []byte(`{"architecture":"amd64"}`))
	layer := e.pushBlob("app", randomBytes(t, 1000))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfg, Size: 24},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layer, Size: 1000}}}
	m.SchemaVersion = 2
	body, _ := json.Marshal(m)
	d := digest.FromBytes(body)
	written, _, err := e.store.Write(context.Background(), bytes.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Stored the old way: no Refs.
	if err := e.graph.PutManifest("app", refgraph.Manifest{Digest: d, MediaType: m.MediaType, Size: int64(len(body))}, "v1", written); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.graph.Usage("app", layer); n != 0 {
		t.Fatalf("use count %d before migrating", n)
	}
	e.svc.migrateRefs(context.Background())
	got, err := e.graph.Manifest("app", d)
	if err != nil || len(got.Refs) != 2 {
		t.Fatalf("refs after migrating: %v %v", got.Refs, err)
	}
	for _, r := range []digest.Digest{cfg, layer} {
		if n, _ := e.graph.Usage("app", r); n != 1 {
			t.Fatalf("use count of %s: %d", r, n)
		}
	}
	if _, err := e.graph.Setting(refsMigrated); err != nil {
		t.Fatal(err)
	}
	if r, err := e.graph.Check(false); err != nil || !r.OK() {
		t.Fatalf("check: %+v %v", r, err)
	}
}
