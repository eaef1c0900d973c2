package ocihttp_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/chunkyard/chunkyard/scan"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestScanEndpoint: GET /chunkyard/v1/<name>/scan/<reference> answers 202
// while the image's layers wait, 200 with the report once the workers
// have analyzed them, and 404 for an unknown tag or an artifact.
func TestScanEndpoint(t *testing.T) {
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
	svc, err := registry.New(graph, store, registry.Options{UploadDir: filepath.Join(dir, "uploads"),
		Scan: registry.ScanOptions{Workers: 1, TempDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ocihttp.NewHandler(svc, ocihttp.Options{}))
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	t.Cleanup(func() {
		stop()
		<-ran
		srv.Close()
		svc.Close()
		store.Close()
		graph.Close()
	})
	reg := &testRegistry{host: strings.TrimPrefix(srv.URL, "http://"), graph: graph, store: store}

	rec, err := os.ReadFile("../scan/testdata/osv/npm/GHSA-35jh-r3h4-6jhm.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ImportAdvisories(ctx, bytes.NewReader(rec), "", 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte(`{"name":"lodash","version":"4.17.20"}`)
	tw.WriteHeader(&tar.Header{Name: "app/node_modules/lodash/package.json", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write(body)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.ref(t, "scan/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	// An artifact: an OCI manifest whose config is not an image config.
	art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.thing+json")
	art, err = mutate.AppendLayers(art, static.NewLayer([]byte("notes"), "text/plain"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(reg.ref(t, "scan/app:notes"), art); err != nil {
		t.Fatal(err)
	}

	get := func(ref string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/chunkyard/v1/scan/app/scan/" + ref)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get("v1"); code != http.StatusAccepted || !strings.Contains(string(b), `"status": "queued"`) {
		t.Fatalf("before the workers ran: %d %s", code, b)
	}
	if code, b := get("nope"); code != http.StatusNotFound || !strings.Contains(string(b), "MANIFEST_UNKNOWN") {
		t.Fatalf("unknown tag: %d %s", code, b)
	}
	if code, b := get("notes"); code != http.StatusNotFound || !strings.Contains(string(b), "NOT_AN_IMAGE") {
		t.Fatalf("artifact: %d %s", code, b)
	}
	go func() { svc.Run(runCtx); close(ran) }()
	deadline := time.Now().Add(time.Minute)
	for {
		code, b := get("v1")
		if code == http.StatusOK {
			var r scan.Report
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if len(r.Findings) != 1 || r.Findings[0].ID != "GHSA-35jh-r3h4-6jhm" || r.Findings[0].Fixed != "4.17.21" || r.Feed.Generation != 1 {
				t.Fatalf("report: %s", b)
			}
			d, _ := img.Digest()
			if r.Image != d.String() {
				t.Fatalf("report of %s, pushed %s", r.Image, d)
			}
			return
		}
		if code != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("%d %s", code, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
