// Package benchtest builds small OCI image layouts for tests: tars of
// pseudo-random text files, compressed, wrapped in manifests and written
// as blobs/, index.json and oci-layout.
package benchtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one regular file of a layer.
type File struct {
	Name string
	Data []byte
}

// Files returns n files of size bytes each: words drawn from a small
// vocabulary, so they compress about 3x, and differ with the seed.
func Files(seed uint64, n, size int) []File {
	words := []string{"layer", "chunk", "pack", "tar", "gzip", "zstd", "registry", "blob",
		"digest", "manifest", "index", "header", "content", "stream", "encoder", "recipe"}
	r := rand.New(rand.NewPCG(seed, 42))
	files := make([]File, n)
	for i := range files {
		b := make([]byte, 0, size+16)
		for len(b) < size {
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, " \n"[r.IntN(2)])
			b = strconv.AppendUint(b, uint64(r.Uint32()), 10)
			b = append(b, ' ')
		}
		files[i] = File{Name: fmt.Sprintf("usr/share/f%03d.txt", i), Data: b[:size]}
	}
	return files
}

// Tar returns a tar of files, every header with mtime.
func Tar(t testing.TB, files []File, mtime time.Time) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		hdr := &tar.Header{Name: f.Name, Mode: 0o644, Size: int64(len(f.Data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Gzip compresses b with compress/gzip at level, as docker and BuildKit do
// at level 6 (gzip.DefaultCompression).
func Gzip(t testing.TB, b []byte, level int) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Layer is a layer blob and its media type.
type Layer struct {
	MediaType string
	Data      []byte
}

// GzipLayer is a gzip layer.
func GzipLayer(data []byte) Layer {
	return Layer{MediaType: ocispec.MediaTypeImageLayerGzip, Data: data}
}

// Image is a config and its layers.
type Image struct {
	Config []byte // nil: a small config naming the layers
	Layers []Layer
}

// WriteBlob writes b into the layout in dir and returns its descriptor.
func WriteBlob(t testing.TB, dir, mediaType string, b []byte) ocispec.Descriptor {
	t.Helper()
	d := digest.NewDigestFromBytes(digest.SHA256, sha256Sum(b))
	path := filepath.Join(dir, ocispec.ImageBlobsDir, "sha256", d.Encoded())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// WriteImage writes an image's blobs and manifest and returns the
// manifest's descriptor.
func WriteImage(t testing.TB, dir string, img Image) ocispec.Descriptor {
	t.Helper()
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
	}
	var layers []string
	for _, l := range img.Layers {
		d := WriteBlob(t, dir, l.MediaType, l.Data)
		m.Layers = append(m.Layers, d)
		layers = append(layers, d.Digest.String())
	}
	config := img.Config
	if config == nil {
		config = mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "layers": layers})
	}
	m.Config = WriteBlob(t, dir, ocispec.MediaTypeImageConfig, config)
	return WriteBlob(t, dir, ocispec.MediaTypeImageManifest, mustJSON(t, m))
}

// WriteIndex writes an image index blob listing manifests.
func WriteIndex(t testing.TB, dir string, manifests ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	return WriteBlob(t, dir, ocispec.MediaTypeImageIndex, mustJSON(t, index(manifests)))
}

// WriteIndexJSON writes the layout's index.json and oci-layout files.
func WriteIndexJSON(t testing.TB, dir string, manifests ...ocispec.Descriptor) {
	t.Helper()
	layout := ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), mustJSON(t, layout), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ocispec.ImageIndexFile), mustJSON(t, index(manifests)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteLayout writes images as a layout in dir, index.json listing each.
func WriteLayout(t testing.TB, dir string, images ...Image) {
	t.Helper()
	var descs []ocispec.Descriptor
	for _, img := range images {
		descs = append(descs, WriteImage(t, dir, img))
	}
	WriteIndexJSON(t, dir, descs...)
}

func index(manifests []ocispec.Descriptor) ocispec.Index {
	return ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Rebuild returns two layers like a CI rebuild: files at mtime t1, and the
// same files at t2 with file changed replaced by other bytes.
func Rebuild(t testing.TB, files []File, changed int, t1, t2 time.Time) (before, after []byte) {
	t.Helper()
	before = Tar(t, files, t1)
	next := append([]File(nil), files...)
	next[changed] = File{Name: files[changed].Name, Data: Files(uint64(len(files))+1000, 1, len(files[changed].Data))[0].Data}
	after = Tar(t, next, t2)
	return before, after
}
