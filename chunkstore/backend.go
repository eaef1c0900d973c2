package chunkstore

import (
	"context"
	"io"
)

// Backend stores immutable named objects (packs). Implementations must be
// safe for concurrent use. Errors about a missing object wrap ErrNotExist.
type Backend interface {
	// Put stores r (exactly size bytes) under name, atomically and durably
	// (fsync for local storage) when it returns nil. An existing object of
	// the same name is replaced.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// ReadRange returns length bytes at off of object name. The error wraps
	// ErrNotExist if the object is missing. Reading past the end of the
	// object is an error.
	ReadRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Delete removes object name. Deleting a missing object returns nil.
	Delete(ctx context.Context, name string) error
	// List calls fn for every object; an error from fn stops the listing and
	// is returned.
	List(ctx context.Context, fn func(name string, size int64) error) error
}

// Adopter is an optional Backend method: move a complete, fsynced local
// file in as object name, without copying it when possible. On success the
// file at path is gone.
type Adopter interface {
	Adopt(ctx context.Context, name, path string) error
}

// Stater is an optional Backend method returning an object's size. Without
// it the Store finds sizes with List.
type Stater interface {
	Stat(ctx context.Context, name string) (int64, error)
}

// ValidName reports whether name is usable as an object name: 2 to 255
// characters from [A-Za-z0-9._-], not starting with a dot (temporary files
// start with one). Every backend takes these names and only these.
func ValidName(name string) bool {
	if len(name) < 2 || len(name) > 255 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ContextReader returns a reader of r whose reads fail once ctx is done,
// so that long copies can be cancelled.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
