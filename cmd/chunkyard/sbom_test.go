package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/scan"
)

// TestAttachSBOMIsAReferrer pushes an image to the real registry service
// behind its HTTP handler, attaches a report's SBOM, and reads it back
// through the referrers API: the referrer has CycloneDX's artifact type,
// the image as its subject, and one blob, the SBOM, naming the report's
// packages. An unknown image is refused and leaves no referrer.
func TestAttachSBOMIsAReferrer(t *testing.T) {
	ctx := context.Background()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	if err := fs.Parse([]string{"--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	data, err := openData(ctx, sf, log, true)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	svc, err := offlineService(data, sf, log)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(ocihttp.NewHandler(svc, ocihttp.Options{Logger: log}))
	defer srv.Close()
	client := srv.Client()
	const repo = "test/app"

	// An image of one layer, pushed through the distribution API.
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	pj := []byte(`{"name": "lodash", "version": "4.17.20"}`)
	tw.WriteHeader(&tar.Header{Name: "app/node_modules/lodash/package.json", Mode: 0o644, Size: int64(len(pj)), Typeflag: tar.TypeReg})
	tw.Write(pj)
	tw.Close()
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	zw.Write(layerTar.Bytes())
	zw.Close()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layerTar.Bytes()).String() + `"]}}`)
	for _, b := range [][]byte{layer.Bytes(), config} {
		if err := pushBlob(ctx, client, srv.URL, repo, digest.FromBytes(b), b); err != nil {
			t.Fatal(err)
		}
	}
	man, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(layer.Bytes()), Size: int64(layer.Len())}},
	})
	if err != nil {
		t.Fatal(err)
	}
	image := digest.FromBytes(man)
	resp, err := send(ctx, client, http.MethodPut, srv.URL+"/v2/"+repo+"/manifests/v1", ocispec.MediaTypeImageManifest, man)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("pushing the image: %v %v", resp, err)
	}

	r := &scan.Report{Image: image.String(), Packages: []scan.Package{
		{Name: "lodash", Version: "4.17.20", Ecosystem: "npm", Manager: "npm", Path: "app/node_modules/lodash/package.json"},
	}}
	d, err := attachSBOM(ctx, client, srv.URL, repo, r)
	if err != nil {
		t.Fatal(err)
	}

	idx := getJSON[ocispec.Index](t, client, srv.URL+"/v2/"+repo+"/referrers/"+image.String()+"?artifactType="+url.QueryEscape(ArtifactTypeCycloneDX))
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != d || idx.Manifests[0].ArtifactType != ArtifactTypeCycloneDX {
		t.Fatalf("referrers of the image: %+v, want one, %s, of type %s", idx.Manifests, d, ArtifactTypeCycloneDX)
	}
	ref := getJSON[ocispec.Manifest](t, client, srv.URL+"/v2/"+repo+"/manifests/"+d.String())
	if ref.Subject == nil || ref.Subject.Digest != image || ref.Subject.Size != int64(len(man)) || ref.Subject.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("the referrer's subject: %+v, want the image %s (%d bytes)", ref.Subject, image, len(man))
	}
	if len(ref.Layers) != 1 || ref.Layers[0].MediaType != ArtifactTypeCycloneDX {
		t.Fatalf("the referrer's blobs: %+v", ref.Layers)
	}
	bom := getJSON[struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct{ Name, Version string }
	}](t, client, srv.URL+"/v2/"+repo+"/blobs/"+ref.Layers[0].Digest.String())
	if bom.BOMFormat != "CycloneDX" || len(bom.Components) != 1 || bom.Components[0].Name != "lodash" || bom.Components[0].Version != "4.17.20" {
		t.Fatalf("the SBOM: %+v", bom)
	}

	unknown := &scan.Report{Image: digest.FromString("no such image").String()}
	if _, err := attachSBOM(ctx, client, srv.URL, repo, unknown); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("attaching to an unknown image: %v, want a 404", err)
	}
	idx = getJSON[ocispec.Index](t, client, srv.URL+"/v2/"+repo+"/referrers/"+unknown.Image)
	if len(idx.Manifests) != 0 {
		t.Fatalf("referrers of an unknown image: %+v", idx.Manifests)
	}
}

func getJSON[T any](t *testing.T, client *http.Client, u string) T {
	t.Helper()
	var v T
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return v
}
