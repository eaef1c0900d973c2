package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestBytes bounds a manifest or index read into memory (the
// registry refuses larger ones too).
const maxManifestBytes = 4 << 20

// Roles of a blob in its layout.
const (
	RoleManifest = "manifest" // an image manifest or index
	RoleConfig   = "config"
	RoleLayer    = "layer"
)

// layoutBlob is a blob that a layout's index.json reaches.
type layoutBlob struct {
	Digest    digest.Digest
	Size      int64
	MediaType string
	Role      string
	index     int // position in the layout, to order details
}

// layout is what an OCI image layout holds, walked from index.json.
type layout struct {
	dir       string
	manifests []layoutBlob // manifests and indexes, each once
	blobs     []layoutBlob // configs and layers, each once, in manifest order
	missing   int          // descriptors whose blob is not in blobs/
}

// manifestBody holds the fields of image manifests and indexes that
// reference other content.
type manifestBody struct {
	MediaType string               `json:"mediaType"`
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Manifests []ocispec.Descriptor `json:"manifests"`
}

// readLayout walks the layout in dir: index.json, the manifests and
// indexes it lists (nested indexes too), and their configs and layers.
// Manifests are read and checked against their digests; other blobs are
// only listed. A descriptor whose blob is absent (a platform not pulled, a
// foreign layer) is counted as missing, not an error.
func readLayout(dir string) (*layout, error) {
	b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bench: %s is not an OCI image layout (no %s)", dir, ocispec.ImageIndexFile)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: reading layout: %w", err)
	}
	var index manifestBody
	if err := json.Unmarshal(b, &index); err != nil {
		return nil, fmt.Errorf("bench: %s: %w", filepath.Join(dir, ocispec.ImageIndexFile), err)
	}
	l := &layout{dir: dir}
	w := walker{l: l, seen: map[digest.Digest]bool{}}
	for _, d := range index.Manifests {
		if err := w.manifest(d, 0); err != nil {
			return nil, fmt.Errorf("bench: layout %s: %w", dir, err)
		}
	}
	return l, nil
}

type walker struct {
	l    *layout
	seen map[digest.Digest]bool
	n    int
}

// maxDepth bounds nested indexes.
const maxDepth = 8

func (w *walker) manifest(d ocispec.Descriptor, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("indexes nested deeper than %d", maxDepth)
	}
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %w", d.Digest, err)
	}
	if w.seen[d.Digest] {
		return nil
	}
	w.seen[d.Digest] = true
	if d.Size > maxManifestBytes {
		return fmt.Errorf("manifest %s: %d bytes exceeds %d", d.Digest, d.Size, maxManifestBytes)
	}
	content, err := readManifest(w.l.dir, d)
	if errors.Is(err, fs.ErrNotExist) {
		w.l.missing++
		return nil
	}
	if err != nil {
		return err
	}
	w.l.manifests = append(w.l.manifests, w.blob(d, RoleManifest))
	var m manifestBody
	if err := json.Unmarshal(content, &m); err != nil {
		return fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	for _, child := range m.Manifests {
		if err := w.manifest(child, depth+1); err != nil {
			return err
		}
	}
	if m.Config != nil {
		if err := w.leaf(*m.Config, RoleConfig); err != nil {
			return err
		}
	}
	for _, layer := range m.Layers {
		if err := w.leaf(layer, RoleLayer); err != nil {
			return err
		}
	}
	return nil
}

// leaf lists a config or layer blob.
func (w *walker) leaf(d ocispec.Descriptor, role string) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %w", d.Digest, err)
	}
	if w.seen[d.Digest] {
		return nil
	}
	w.seen[d.Digest] = true
	fi, err := os.Stat(blobPath(w.l.dir, d.Digest))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.l.missing++
		return nil
	case err != nil:
		return err
	case fi.Size() != d.Size:
		return fmt.Errorf("blob %s: file has %d bytes, descriptor says %d", d.Digest, fi.Size(), d.Size)
	}
	w.l.blobs = append(w.l.blobs, w.blob(d, role))
	return nil
}

func (w *walker) blob(d ocispec.Descriptor, role string) layoutBlob {
	w.n++
	return layoutBlob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Role: role, index: w.n}
}

// readManifest reads a manifest blob and checks its size and digest.
func readManifest(dir string, d ocispec.Descriptor) ([]byte, error) {
	f, err := os.Open(blobPath(dir, d.Digest))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(f, maxManifestBytes+1)); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	b := buf.Bytes()
	if int64(len(b)) != d.Size || d.Digest.Algorithm().FromBytes(b) != d.Digest {
		return nil, fmt.Errorf("manifest %s: content does not match the descriptor (%d bytes, %d expected)", d.Digest, len(b), d.Size)
	}
	return b, nil
}

// blobPath is where a layout keeps blob d; d must be valid.
func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}
