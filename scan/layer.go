package scan

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"path"
	"strings"
)

// File is one entry of a layer as the analyzers see it.
type File struct {
	// Path is slash-separated and relative to the image root, cleaned,
	// without a leading "/" or "./": "etc/os-release".
	Path string
	// Type is the tar type flag: tar.TypeReg, tar.TypeDir,
	// tar.TypeSymlink, tar.TypeLink, ...
	Type byte
	// Size is a regular file's length in bytes.
	Size int64
	// Mode holds the permission bits (0o755).
	Mode int64
	// Link is a symbolic or hard link's target.
	Link string
}

// Regular reports whether f is a regular file (whose content can be read).
func (f File) Regular() bool { return f.Type == tar.TypeReg || f.Type == tar.TypeRegA }

// Content is a file's bytes, readable at any offset.
type Content interface {
	io.ReaderAt
	Size() int64
}

// OpenFunc opens the file a WalkFunc was called for. The Content is valid
// only until the WalkFunc returns.
type OpenFunc func() (Content, error)

// WalkFunc is called for each entry of a layer, in archive order. It calls
// open only for the files it reads.
type WalkFunc func(f File, open OpenFunc) error

// Layer is what the analyzers read a layer through. Walk may be called
// once.
type Layer interface {
	Walk(ctx context.Context, fn WalkFunc) (ReadStats, error)
}

// ReadStats says how much of a layer a walk read.
type ReadStats struct {
	// Uncompressed is the layer's tar size in bytes.
	Uncompressed int64 `json:"uncompressed"`
	// HeaderBytes is what was read of a split layer's header stream (all
	// of it); 0 for a tar stream, whose headers are part of Uncompressed.
	HeaderBytes int64 `json:"header_bytes,omitempty"`
	// ContentRead is the file content bytes the analyzers asked for.
	ContentRead int64 `json:"content_read"`
	// StoreRead is the bytes the content reader fetched from storage to
	// serve them (whole chunks), when it counts them (see StoreCounter);
	// for a tar stream, every byte of it passes: Uncompressed.
	StoreRead int64 `json:"store_read,omitempty"`
	// FilesRead counts the files opened.
	FilesRead int `json:"files_read"`
}

// StoreCounter is implemented by content readers that know how many bytes
// of storage (whole chunks, say) they fetched to serve their reads.
type StoreCounter interface {
	StoreBytesRead() int64
}

// ReadError wraps an error reading a layer's bytes from where they are
// stored (not a problem with the layer itself): an analysis that meets it
// fails rather than record a note, so that the inventory is not cached
// incomplete.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading layer: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// errNotRegular is returned by open for entries without content.
var errNotRegular = errors.New("not a regular file")

// cleanPath turns a tar entry name into a File.Path; "" for the root.
func cleanPath(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

func fileOf(h *tar.Header) File {
	return File{Path: cleanPath(h.Name), Type: h.Typeflag, Size: h.Size, Mode: h.Mode & 0o7777, Link: h.Linkname}
}
