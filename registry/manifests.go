package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry accepts.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// isIndex reports whether mediaType lists manifests rather than blobs.
func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == MediaTypeDockerManifestList
}

func knownManifestType(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		MediaTypeDockerManifest, MediaTypeDockerManifestList:
		return true
	}
	return false
}

// Manifest is a manifest as served.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Size      int64
	Content   []byte // nil from StatManifest
}

// manifestBody holds the fields of image manifests and indexes that the
// registry validates and indexes.
type manifestBody struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

// maxManifestContainers bounds the JSON objects and arrays of a manifest:
// decoding costs memory per object (a descriptor is about 150 bytes
// decoded, from as little as 2 bytes of JSON), so a 4 MiB manifest of
// empty objects would take hundreds of MiB. Real manifests hold a few
// objects per layer, image or annotation map.
const maxManifestContainers = 20000

// jsonContainers counts the '{' and '[' of b outside strings, stopping
// once past maxManifestContainers.
func jsonContainers(b []byte) int {
	n, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == '{' || c == '['):
			if n++; n > maxManifestContainers {
				return n
			}
		}
	}
	return n
}

// resolve turns a reference (tag or digest) into a digest.
func (s *Service) resolve(repo, ref string) (digest.Digest, error) {
	if d, err := digest.Parse(ref); err == nil {
		return d, nil
	} else if strings.Contains(ref, ":") {
		return "", fmt.Errorf("%w: reference %q: %v", ErrDigestInvalid, ref, err)
	}
	if err := ValidateTag(ref); err != nil {
		return "", err
	}
	d, err := s.graph.ResolveTag(repo, ref)
	return d, notFound(err, ErrManifestUnknown, ref)
}

// StatManifest returns the manifest's digest, media type and size.
func (s *Service) StatManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	if s.fb != nil {
		return s.fallbackManifest(ctx, repo, ref, false)
	}
	return s.statManifest(repo, ref)
}

func (s *Service) statManifest(repo, ref string) (Manifest, error) {
	d, err := s.resolve(repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	m, err := s.graph.Manifest(repo, d)
	if err != nil {
		return Manifest{}, notFound(err, ErrManifestUnknown, ref)
	}
	return Manifest{Digest: d, MediaType: m.MediaType, Size: m.Size}, nil
}

// GetManifest returns the manifest ref (tag or digest) of repo.
func (s *Service) GetManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	if s.fb != nil {
		return s.fallbackManifest(ctx, repo, ref, true)
	}
	return s.getManifest(ctx, repo, ref)
}

func (s *Service) getManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	m, err := s.statManifest(repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	b, err := s.graph.Blob(m.Digest)
	if err != nil {
		return Manifest{}, fmt.Errorf("registry: manifest %s has no blob: %w", m.Digest, err)
	}
	content, err := s.readAll(ctx, b)
	if err != nil {
		return Manifest{}, err
	}
	m.Content = content
	s.pulls.touch(repo, m.Digest)
	return m, nil
}

// PutManifest validates and stores content as manifest ref (a tag or its
// digest) of repo, and returns its digest and subject (if any).
// contentType is the request's Content-Type.
func (s *Service) PutManifest(ctx context.Context, repo, ref, contentType string, content []byte) (_, _ digest.Digest, err error) {
	defer guard(&err)
	return s.putManifest(ctx, repo, ref, contentType, content)
}

func (s *Service) putManifest(ctx context.Context, repo, ref, contentType string, content []byte) (digest.Digest, digest.Digest, error) {
	if int64(len(content)) > s.maxMan {
		return "", "", fmt.Errorf("%w: manifest of %d bytes, limit %d", ErrTooLarge, len(content), s.maxMan)
	}
	algo := digest.Canonical
	tag := ""
	if d, err := digest.Parse(ref); err == nil {
		algo = d.Algorithm()
		if !algo.Available() {
			return "", "", fmt.Errorf("%w: algorithm %s", ErrDigestInvalid, algo)
		}
		if got := algo.FromBytes(content); got != d {
			return "", "", fmt.Errorf("%w: manifest is %s", ErrDigestInvalid, got)
		}
	} else if err := ValidateTag(ref); err != nil {
		return "", "", err
	} else {
		tag = ref
	}
	d := algo.FromBytes(content)

	if n := jsonContainers(content); n > maxManifestContainers {
		return "", "", fmt.Errorf("%w: %d JSON objects and arrays, at most %d", ErrManifestInvalid, n, maxManifestContainers)
	}
	var body manifestBody
	if err := json.Unmarshal(content, &body); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrManifestInvalid, err)
	}
	mediaType := contentType
	if mediaType == "" {
		mediaType = body.MediaType
	}
	if body.MediaType != "" && body.MediaType != mediaType {
		return "", "", fmt.Errorf("%w: mediaType %q does not match Content-Type %q", ErrManifestInvalid, body.MediaType, mediaType)
	}
	if !knownManifestType(mediaType) {
		return "", "", fmt.Errorf("%w: unsupported manifest media type %q", ErrManifestInvalid, mediaType)
	}
	if body.SchemaVersion != 2 {
		return "", "", fmt.Errorf("%w: schemaVersion %d, want 2", ErrManifestInvalid, body.SchemaVersion)
	}
	refs, err := s.checkReferences(repo, mediaType, body)
	if err != nil {
		return "", "", err
	}

	m := refgraph.Manifest{
		Digest:       d,
		MediaType:    mediaType,
		Size:         int64(len(content)),
		ArtifactType: body.ArtifactType,
		Annotations:  body.Annotations,
		Refs:         refs,
	}
	if m.ArtifactType == "" && !isIndex(mediaType) && body.Config != nil {
		m.ArtifactType = body.Config.MediaType
	}
	if body.Subject != nil {
		if err := checkDigest(body.Subject.Digest); err != nil {
			return "", "", fmt.Errorf("%w: subject: %v", ErrManifestInvalid, err)
		}
		m.Subject = body.Subject.Digest
	}

	// Manifest bytes are chunked like any blob (unless already stored, and
	// again if garbage collection removed them meanwhile).
	var written []chunkstore.Chunk
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !s.blobExists(d) {
			if written, _, err = s.store.Write(ctx, bytes.NewReader(content), s.knownChunk); err != nil {
				return "", "", fmt.Errorf("registry: store manifest %s: %w", d, err)
			}
		}
		err = s.graph.PutManifest(repo, m, tag, written)
		if attempt > 0 || !errors.Is(err, refgraph.ErrNotFound) && !errors.Is(err, refgraph.ErrChunkMissing) {
			break
		}
	}
	if errors.Is(err, refgraph.ErrRefMissing) {
		// Garbage collection took a blob the manifest names after the
		// check above (its link was unused past the grace period).
		return "", "", fmt.Errorf("%w: %v", ErrManifestBlobUnknown, err)
	}
	if err != nil {
		return "", "", err
	}
	s.scanManifest(ctx, d, mediaType, body)
	return d, m.Subject, nil
}

// blobExists reports whether blob d is indexed (false on lookup errors:
// the caller then stores it again).
func (s *Service) blobExists(d digest.Digest) bool {
	_, err := s.graph.Blob(d)
	return err == nil
}

// checkReferences requires every blob and child manifest a manifest names
// to be in repo. Layers with URLs (non-distributable) may live elsewhere.
// It returns the digests it found there, which the manifest keeps in use.
func (s *Service) checkReferences(repo, mediaType string, body manifestBody) ([]digest.Digest, error) {
	var refs []digest.Digest
	if isIndex(mediaType) {
		if body.Config != nil || len(body.Layers) > 0 {
			return nil, fmt.Errorf("%w: an index has no config or layers", ErrManifestInvalid)
		}
		for _, desc := range body.Manifests {
			if err := checkDigest(desc.Digest); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrManifestInvalid, err)
			}
			if _, err := s.graph.Manifest(repo, desc.Digest); err != nil {
				return nil, notFound(err, ErrManifestBlobUnknown, desc.Digest)
			}
			refs = append(refs, desc.Digest)
		}
		return refs, nil
	}
	if body.Config == nil {
		return nil, fmt.Errorf("%w: image manifest without config", ErrManifestInvalid)
	}
	if len(body.Manifests) > 0 {
		return nil, fmt.Errorf("%w: an image manifest has no manifests list", ErrManifestInvalid)
	}
	descs := append([]ocispec.Descriptor{*body.Config}, body.Layers...)
	for _, desc := range descs {
		if err := checkDigest(desc.Digest); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrManifestInvalid, err)
		}
		if len(desc.URLs) > 0 {
			continue
		}
		b, err := s.linkedBlob(repo, desc.Digest)
		if err != nil {
			if errors.Is(err, ErrBlobUnknown) {
				return nil, fmt.Errorf("%w: %s", ErrManifestBlobUnknown, desc.Digest)
			}
			return nil, err
		}
		if b.Size != desc.Size {
			return nil, fmt.Errorf("%w: blob %s is %d bytes, manifest says %d", ErrManifestInvalid, desc.Digest, b.Size, desc.Size)
		}
		if !slices.Contains(refs, desc.Digest) {
			refs = append(refs, desc.Digest)
		}
	}
	return refs, nil
}

// DeleteManifest deletes a tag, or a manifest (with its tags) by digest.
func (s *Service) DeleteManifest(ctx context.Context, repo, ref string) (err error) {
	defer guard(&err)
	d, err := digest.Parse(ref)
	if err != nil {
		if err := ValidateTag(ref); err != nil {
			return err
		}
		return notFound(s.graph.DeleteTag(repo, ref), ErrManifestUnknown, ref)
	}
	return notFound(s.graph.DeleteManifest(repo, d), ErrManifestUnknown, ref)
}
