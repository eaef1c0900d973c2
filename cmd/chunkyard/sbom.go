package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chunkyard/chunkyard/scan"
)

// ArtifactTypeCycloneDX is the artifact type of the SBOM referrers
// `chunkyard scan --attach-sbom` pushes (the media type CycloneDX
// registers for its JSON form).
const ArtifactTypeCycloneDX = "application/vnd.cyclonedx+json"

// maxSubjectManifest bounds the image manifest read to describe the
// subject of a referrer.
const maxSubjectManifest = 4 << 20

// attachSBOM pushes r's CycloneDX SBOM to repo on the registry at base
// (http://HOST:PORT) through the OCI distribution API, as an artifact
// manifest whose subject is the image r reports on: `oras discover` and
// the referrers API list it under artifactType application/vnd.cyclonedx+json.
// It returns the referrer's manifest digest.
func attachSBOM(ctx context.Context, client *http.Client, base, repo string, r *scan.Report) (digest.Digest, error) {
	subject, err := describeManifest(ctx, client, base, repo, r.Image)
	if err != nil {
		return "", err
	}
	var sbom bytes.Buffer
	if err := scan.WriteReport(&sbom, r, scan.FormatCycloneDX); err != nil {
		return "", err
	}
	empty := ocispec.DescriptorEmptyJSON
	layer := ocispec.Descriptor{
		MediaType:   ArtifactTypeCycloneDX,
		Digest:      digest.FromBytes(sbom.Bytes()),
		Size:        int64(sbom.Len()),
		Annotations: map[string]string{ocispec.AnnotationTitle: "sbom.cdx.json"},
	}
	if err := pushBlob(ctx, client, base, repo, empty.Digest, empty.Data); err != nil {
		return "", err
	}
	if err := pushBlob(ctx, client, base, repo, layer.Digest, sbom.Bytes()); err != nil {
		return "", err
	}
	empty.Data = nil
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactTypeCycloneDX,
		Config:       empty,
		Layers:       []ocispec.Descriptor{layer},
		Subject:      &subject,
		Annotations:  map[string]string{ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339)},
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	d := digest.FromBytes(body)
	u := base + "/v2/" + repo + "/manifests/" + d.String()
	resp, err := send(ctx, client, http.MethodPut, u, ocispec.MediaTypeImageManifest, body)
	if err != nil {
		return "", fmt.Errorf("attaching the SBOM: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("attaching the SBOM: manifest: %s", resp.Status)
	}
	return d, nil
}

// describeManifest returns the descriptor of manifest d of repo: its
// media type, digest and size.
func describeManifest(ctx context.Context, client *http.Client, base, repo, d string) (ocispec.Descriptor, error) {
	want, err := digest.Parse(d)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: the report's image %q: %w", d, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+d, nil)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	req.Header.Set("Accept", strings.Join([]string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"}, ", "))
	resp, err := client.Do(req)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSubjectManifest+1))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: reading manifest %s: %w", d, err)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: manifest %s: %s", d, resp.Status)
	case len(body) > maxSubjectManifest:
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: manifest %s over %d bytes", d, maxSubjectManifest)
	case want.Algorithm().FromBytes(body) != want:
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: manifest %s: the server sent other bytes", d)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("attaching the SBOM: manifest %s: content type: %w", d, err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: want, Size: int64(len(body))}, nil
}

// pushBlob uploads data as blob d of repo (a POST opening the upload, a
// PUT closing it with the bytes), unless the registry has it already.
func pushBlob(ctx context.Context, client *http.Client, base, repo string, d digest.Digest, data []byte) error {
	resp, err := send(ctx, client, http.MethodHead, base+"/v2/"+repo+"/blobs/"+d.String(), "", nil)
	if err != nil {
		return fmt.Errorf("attaching the SBOM: blob %s: %w", d, err)
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = send(ctx, client, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return fmt.Errorf("attaching the SBOM: blob %s: %w", d, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("attaching the SBOM: blob %s: starting the upload: %s", d, resp.Status)
	}
	loc, err := url.Parse(base + "/")
	if err == nil {
		loc, err = loc.Parse(resp.Header.Get("Location"))
	}
	if err != nil {
		return fmt.Errorf("attaching the SBOM: blob %s: upload location: %w", d, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = send(ctx, client, http.MethodPut, loc.String(), "application/octet-stream", data)
	if err != nil {
		return fmt.Errorf("attaching the SBOM: blob %s: %w", d, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("attaching the SBOM: blob %s: %s", d, resp.Status)
	}
	return nil
}

// send makes one request and drains and closes its response (the status
// and headers stay readable).
func send(ctx context.Context, client *http.Client, method, u, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.ContentLength = int64(len(body))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, nil
}
