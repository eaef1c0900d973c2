package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// env is a service on a data dir that can be "restarted".
type env struct {
	t       testing.TB
	dir     string
	convert ConvertOptions
	scan    ScanOptions
	layers  *chunkstore.FileCache
	log     *slog.Logger // nil: discard
	// encodePar is Options.EncodeParallelism (0: the default).
	encodePar int
	graph     *refgraph.Graph
	store     *chunkstore.Store
	svc       *Service
}

func newEnv(t testing.TB) *env {
	e := &env{t: t, dir: t.TempDir()}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	var err error
	ctx := context.Background()
	// Small chunks (64 KiB min, 256 KiB average, 1 MiB max) keep what a
	// test measures about dedup independent of the random polynomial.
	e.store, err = chunkstore.Open(ctx, chunkstore.Options{Dir: filepath.Join(e.dir, "store"), PackSize: 4 << 20,
		MinChunk: 64 << 10, AverageBits: 18, MaxChunk: 1 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
	e.graph, err = refgraph.Open(filepath.Join(e.dir, "index"), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	log := e.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e.svc, err = New(e.graph, e.store, Options{UploadDir: filepath.Join(e.dir, "uploads"), UploadTTL: time.Hour, Convert: e.convert, LayerCache: e.layers,
		EncodeParallelism: e.encodePar, Scan: e.scan, Logger: log})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) close() {
	if e.svc != nil {
		e.svc.Close()
	}
	if e.store != nil {
		e.store.Close()
		e.graph.Close()
		e.store, e.graph = nil, nil
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func (e *env) pushBlob(repo string, data []byte) digest.Digest {
	e.t.Helper()
	ctx := context.Background()
	id, err := e.svc.StartUpload(ctx, repo)
	if err != nil {
		e.t.Fatal(err)
	}
	d := digest.FromBytes(data)
	if err := e.svc.FinishUpload(ctx, repo, id, d, -1, bytes.NewReader(data)); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) readBlob(repo string, d digest.Digest) []byte {
	e.t.Helper()
	rc, _, err := e.svc.OpenBlob(context.Background(), repo, d, 0, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func TestChunkedUploadResumesAcrossRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := randomBytes(t, 3<<20)
	id, err := e.svc.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AppendUpload(ctx, "app", id, 0, bytes.NewReader(data[:1<<20])); err != nil {
		t.Fatal(err)
	}
	// Out of order: 416 class, session unchanged.
	if _, err := e.svc.AppendUpload(ctx, "app", id, 2<<20, bytes.NewReader(data[2<<20:])); !errors.Is(err, ErrRangeInvalid) {
		t.Fatalf("out-of-order chunk: %v", err)
	}
	// The session belongs to its repository.
	if _, err := e.svc.UploadStatus(ctx, "other", id); !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("status from another repo: %v", err)
	}
	e.close()
	e.open()
	size, err := e.svc.UploadStatus(ctx, "app", id)
	if err != nil || size != 1<<20 {
		t.Fatalf("status after restart = %d, %v", size, err)
	}
	if _, err := e.svc.AppendUpload(ctx, "app", id, 1<<20, bytes.NewReader(data[1<<20:2<<20])); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(data)
	if err := e.svc.FinishUpload(ctx, "app", id, d, 2<<20, bytes.NewReader(data[2<<20:])); err != nil {
		t.Fatal(err)
	}
	if got := e.readBlob("app", d); !bytes.Equal(got, data) {
		t.Fatal("blob read back differs")
	}
	if _, err := e.svc.UploadStatus(ctx, "app", id); !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("finished session still there: %v", err)
	}
}

func TestDigestMismatchStoresNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, algo := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		id, _ := e.svc.StartUpload(ctx, "app")
		wrong := algo.FromString("something else")
		err := e.svc.FinishUpload(ctx, "app", id, wrong, -1, strings.NewReader("payload"))
		if !errors.Is(err, ErrDigestInvalid) {
			t.Fatalf("%s: err = %v", algo, err)
		}
	}
	if st := e.graph.Stats(); st.Blobs != 0 {
		t.Fatalf("a rejected upload was indexed: %+v", st)
	}
	// sha512 uploads that match are accepted.
	id, _ := e.svc.StartUpload(ctx, "app")
	d := digest.SHA512.FromString("payload")
	if err := e.svc.FinishUpload(ctx, "app", id, d, -1, strings.NewReader("payload")); err != nil {
		t.Fatal(err)
	}
	if got := e.readBlob("app", d); string(got) != "payload" {
		t.Fatalf("sha512 blob = %q", got)
	}
}

func TestMount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := e.pushBlob("src", []byte("layer"))
	if err := e.svc.MountBlob(ctx, "dst", "nowhere", d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("mount from a repo without the blob: %v", err)
	}
	if err := e.svc.MountBlob(ctx, "dst", "src", d); err != nil {
		t.Fatal(err)
	}
	if got := e.readBlob("dst", d); string(got) != "layer" {
		t.Fatalf("mounted blob = %q", got)
	}
	if err := e.svc.DeleteBlob(ctx, "src", d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StatBlob(ctx, "src", d); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("deleted blob: %v", err)
	}
	if got := e.readBlob("dst", d); string(got) != "layer" {
		t.Fatal("deleting a blob in one repo broke another")
	}
}

func manifestJSON(t *testing.T, m any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPutManifestValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := []byte(`{}`)
	layer := randomBytes(t, 1000)
	cfgD, layerD := e.pushBlob("app", cfg), e.pushBlob("app", layer)
	desc := func(mt string, d digest.Digest, n int) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(n)}
	}
	image := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    desc(ocispec.MediaTypeImageConfig, cfgD, len(cfg)),
		Layers:    []ocispec.Descriptor{desc(ocispec.MediaTypeImageLayer, layerD, len(layer))},
	}
	image.SchemaVersion = 2
	good := manifestJSON(t, image)

	missing := image
	missing.Layers = []ocispec.Descriptor{desc(ocispec.MediaTypeImageLayer, digest.FromString("nope"), 4)}
	wrongSize := image
	wrongSize.Layers = []ocispec.Descriptor{desc(ocispec.MediaTypeImageLayer, layerD, 999)}
	foreign := image // non-distributable: may live elsewhere
	foreign.Layers = []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerNonDistributable, Digest: digest.FromString("far"), Size: 3, URLs: []string{"https://example.com/far"}}}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc(ocispec.MediaTypeImageManifest, digest.FromString("child"), 5)}}
	index.SchemaVersion = 2

	tests := []struct {
		name, ref, ct string
		body          []byte
		want          error
	}{
		{"good by tag", "v1", ocispec.MediaTypeImageManifest, good, nil},
		{"good by digest", digest.FromBytes(good).String(), ocispec.MediaTypeImageManifest, good, nil},
		{"good by sha512 digest", digest.SHA512.FromBytes(good).String(), ocispec.MediaTypeImageManifest, good, nil},
		{"digest mismatch", digest.FromString("x").String(), ocispec.MediaTypeImageManifest, good, ErrDigestInvalid},
		{"bad tag", "-bad", ocispec.MediaTypeImageManifest, good, ErrTagInvalid},
		{"not json", "v1", ocispec.MediaTypeImageManifest, []byte("{"), ErrManifestInvalid},
		{"type mismatch", "v1", ocispec.MediaTypeImageIndex, good, ErrManifestInvalid},
		{"unknown type", "v1", "text/plain", []byte(`{"schemaVersion":2}`), ErrManifestInvalid},
		{"missing blob", "v1", ocispec.MediaTypeImageManifest, manifestJSON(t, missing), ErrManifestBlobUnknown},
		{"wrong size", "v1", ocispec.MediaTypeImageManifest, manifestJSON(t, wrongSize), ErrManifestInvalid},
		{"foreign layer", "v2", ocispec.MediaTypeImageManifest, manifestJSON(t, foreign), nil},
		{"index with missing child", "v1", ocispec.MediaTypeImageIndex, manifestJSON(t, index), ErrManifestBlobUnknown},
		{"too large", "v1", ocispec.MediaTypeImageManifest, bytes.Repeat([]byte(" "), 4<<20+1), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.svc.PutManifest(ctx, "app", tt.ref, tt.ct, tt.body)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	m, err := e.svc.GetManifest(ctx, "app", "v1")
	if err != nil || !bytes.Equal(m.Content, good) || m.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("get v1 = %+v, %v", m, err)
	}
}

func TestReferrersAndSubject(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	empty := e.pushBlob("app", []byte("{}"))
	subject := digest.FromString("not pushed yet") // a subject may be missing
	for i, at := range []string{"application/vnd.example.sig", "application/vnd.example.sbom"} {
		m := ocispec.Manifest{
			MediaType:    ocispec.MediaTypeImageManifest,
			ArtifactType: at,
			Config:       ocispec.DescriptorEmptyJSON,
			Layers:       []ocispec.Descriptor{},
			Subject:      &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject, Size: 10},
			Annotations:  map[string]string{"n": string(rune('a' + i))},
		}
		m.Config.Digest = empty
		m.SchemaVersion = 2
		_, sub, err := e.svc.PutManifest(ctx, "app", digest.FromBytes(manifestJSON(t, m)).String(), ocispec.MediaTypeImageManifest, manifestJSON(t, m))
		if err != nil || sub != subject {
			t.Fatalf("put referrer: %v %v", sub, err)
		}
	}
	all, err := e.svc.Referrers(ctx, "app", subject, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("referrers = %v, %v", all, err)
	}
	sboms, _ := e.svc.Referrers(ctx, "app", subject, "application/vnd.example.sbom")
	if len(sboms) != 1 || sboms[0].Annotations["n"] != "b" {
		t.Fatalf("filtered referrers = %+v", sboms)
	}
	if other, _ := e.svc.Referrers(ctx, "other", subject, ""); len(other) != 0 {
		t.Fatalf("referrers leak across repos: %+v", other)
	}
}

func TestUploadsExpire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old, _ := e.svc.StartUpload(ctx, "app")
	fresh, _ := e.svc.StartUpload(ctx, "app")
	past := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{old, old + ".json"} { // started and last written long ago
		if err := os.Chtimes(filepath.Join(e.dir, "uploads", name), past, past); err != nil {
			t.Fatal(err)
		}
	}
	e.svc.uploads.expire(time.Now())
	if _, err := e.svc.UploadStatus(ctx, "app", old); !errors.Is(err, ErrBlobUploadUnknown) {
		t.Fatalf("expired session: %v", err)
	}
	if _, err := e.svc.UploadStatus(ctx, "app", fresh); err != nil {
		t.Fatalf("fresh session: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "uploads", old+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired session left its sidecar: %v", err)
	}
}

func TestNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "library/alpine": true, "a.b_c__d--e/f": true, "a/b/c/d": true,
		"": false, "A": false, "a/": false, "/a": false, "a//b": false, "a..b": false, "-a": false,
		strings.Repeat("a", 256): false,
	} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	for tag, ok := range map[string]bool{"v1": true, "_x": true, "1.0-rc_1": true, strings.Repeat("t", 128): true,
		"": false, ".x": false, "-x": false, strings.Repeat("t", 129): false, "a/b": false} {
		if err := ValidateTag(tag); (err == nil) != ok {
			t.Errorf("ValidateTag(%q) = %v", tag, err)
		}
	}
}

// A manifest of a few MiB of empty objects would decode to hundreds of
// MiB: it is refused before decoding.
func TestManifestObjectBombRefused(t *testing.T) {
	e := newEnv(t)
	bomb := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[` +
		strings.Repeat(`{},`, maxManifestContainers) + `{}]}`)
	_, _, err := e.svc.PutManifest(context.Background(), "app", "v1", ocispec.MediaTypeImageManifest, bomb)
	if !errors.Is(err, ErrManifestInvalid) || !strings.Contains(err.Error(), "JSON objects") {
		t.Fatalf("object bomb: %v", err)
	}
	if n := jsonContainers([]byte(`{"a":"{[{[","b":[{}],"c":"\"{"}`)); n != 3 {
		t.Fatalf("jsonContainers counted %d, want 3 (brackets in strings do not count)", n)
	}
}
