package ocihttp_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is a registry on a fresh data dir behind httptest.
type testRegistry struct {
	host  string
	graph *refgraph.Graph
	store *chunkstore.Store
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	store, err := chunkstore.Open(ctx, chunkstore.Options{Dir: filepath.Join(dir, "store"), PackSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	graph, err := refgraph.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := registry.New(graph, store, registry.Options{UploadDir: filepath.Join(dir, "uploads")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ocihttp.NewHandler(svc, ocihttp.Options{}))
	t.Cleanup(func() {
		srv.Close()
		store.Close()
		graph.Close()
	})
	return &testRegistry{host: strings.TrimPrefix(srv.URL, "http://"), graph: graph, store: store}
}

func (r *testRegistry) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func layerBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPushPullRoundTrip pushes a random image with go-containerregistry and
// pulls it back byte for byte, by tag and by digest.
func TestPushPullRoundTrip(t *testing.T) {
	reg := newTestRegistry(t)
	img, err := random.Image(3<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.ref(t, "team/app:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	want, _ := img.Digest()
	for _, r := range []string{"team/app:v1", "team/app@" + want.String()} {
		got, err := remote.Image(reg.ref(t, r))
		if err != nil {
			t.Fatalf("pull %s: %v", r, err)
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("pull %s: digest %s, want %s", r, d, want)
		}
		wantLayers, _ := img.Layers()
		gotLayers, err := got.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i := range wantLayers {
			if !bytes.Equal(layerBytes(t, gotLayers[i]), layerBytes(t, wantLayers[i])) {
				t.Fatalf("pull %s: layer %d differs", r, i)
			}
		}
	}
}

// TestSameLayerManyRepos pushes one image into 100 repositories: its
// chunks are stored once.
func TestSameLayerManyRepos(t *testing.T) {
	reg := newTestRegistry(t)
	img, err := random.Image(2<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.ref(t, "dedup/r0:latest"), img); err != nil {
		t.Fatal(err)
	}
	one := reg.graph.Stats()
	for i := 1; i < 100; i++ {
		if err := remote.Write(reg.ref(t, fmt.Sprintf("dedup/r%d:latest", i)), img); err != nil {
			t.Fatal(err)
		}
	}
	after := reg.graph.Stats()
	if after.Chunks != one.Chunks || after.Blobs != one.Blobs || after.PackBytes != one.PackBytes {
		t.Fatalf("pushing the same image again stored more: before %+v after %+v", one, after)
	}
	if after.Repos != 100 {
		t.Fatalf("repos = %d, want 100", after.Repos)
	}
}

// TestBlobIsolation: a blob pushed to one repo is invisible from another.
func TestBlobIsolation(t *testing.T) {
	reg := newTestRegistry(t)
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.ref(t, "tenant-a/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	for repo, want := range map[string]int{"tenant-a/app": http.StatusOK, "tenant-b/app": http.StatusNotFound} {
		resp, err := http.Head("http://" + reg.host + "/v2/" + repo + "/blobs/" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("HEAD blob in %s: %d, want %d", repo, resp.StatusCode, want)
		}
	}
}

// tarOf builds an uncompressed tar of the given files, in order.
func tarOf(t *testing.T, files map[string][]byte, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range order {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[name])
	}
	tw.Close()
	return buf.Bytes()
}

// TestSubLayerDedup pushes two images whose uncompressed layers differ in
// one file: the chunks of the common files are stored once, and both
// layers come back byte for byte.
func TestSubLayerDedup(t *testing.T) {
	reg := newTestRegistry(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	files := map[string][]byte{}
	for _, n := range []string{"a", "b", "c", "d"} {
		files[n] = make([]byte, 4<<20)
		for i := range files[n] {
			files[n][i] = byte(rnd.Uint32())
		}
	}
	files["new"] = []byte("a file only the rebuild has")
	v1Tar := tarOf(t, files, "a", "b", "c", "d")
	v2Tar := tarOf(t, files, "a", "b", "new", "c", "d")
	var wantLayers [][]byte
	for i, tb := range [][]byte{v1Tar, v2Tar} {
		layer := static.NewLayer(tb, types.OCIUncompressedLayer)
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(reg.ref(t, fmt.Sprintf("sub/app:v%d", i+1)), img); err != nil {
			t.Fatal(err)
		}
		wantLayers = append(wantLayers, tb)
	}
	st := reg.graph.Stats()
	if st.SharedChunks == 0 {
		t.Fatalf("no chunk shared between the two layers: %+v", st)
	}
	// The second layer should cost little more than the new file and the
	// chunks around it: well under half its size.
	total := int64(len(v1Tar) + len(v2Tar))
	if st.ChunkRawBytes > total*3/4 {
		t.Fatalf("stored %d raw chunk bytes for %d bytes of layers: little dedup", st.ChunkRawBytes, total)
	}
	for i, want := range wantLayers {
		img, err := remote.Image(reg.ref(t, fmt.Sprintf("sub/app:v%d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if got := layerBytes(t, layers[0]); !bytes.Equal(got, want) {
			t.Fatalf("layer of v%d differs", i+1)
		}
	}
}
