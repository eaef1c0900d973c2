package crashtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/chunkyard/chunkyard/chunkstore"
)

// remote is an in-memory object store standing in for S3: a Put is atomic
// (the object appears whole when Put returns, or not at all) and durable
// (a power loss of the registry's machine does not touch it). It is not an
// Adopter, so the store uploads sealed packs in the background and removes
// them from staging afterwards, as with S3.
type remote struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    atomic.Int64 // Puts in flight
	deleted atomic.Bool  // a Delete since the crasher last looked
	fail    atomic.Bool  // every call fails (an outage)
}

var (
	_ chunkstore.Backend = (*remote)(nil)
	_ chunkstore.Stater  = (*remote)(nil)
)

func newRemote() *remote { return &remote{objects: map[string][]byte{}} }

// snapshot returns a copy of the store as it is now (objects are never
// changed in place, so sharing their bytes is safe).
func (r *remote) snapshot() *remote {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &remote{objects: maps.Clone(r.objects)}
}

// snapshotOrNil is snapshot, for a nil remote nil.
func (r *remote) snapshotOrNil() *remote {
	if r == nil {
		return nil
	}
	return r.snapshot()
}

var errOutage = fmt.Errorf("remote: outage")

func (r *remote) Put(ctx context.Context, name string, rd io.Reader, size int64) error {
	r.puts.Add(1)
	defer r.puts.Add(-1)
	if r.fail.Load() {
		return errOutage
	}
	b, err := io.ReadAll(io.LimitReader(chunkstore.ContextReader(ctx, rd), size))
	if err != nil {
		return fmt.Errorf("remote: put %s: %w", name, err)
	}
	if int64(len(b)) != size {
		return fmt.Errorf("remote: put %s: %d bytes, want %d", name, len(b), size)
	}
	r.mu.Lock()
	r.objects[name] = b
	r.mu.Unlock()
	return nil
}

func (r *remote) get(name string) ([]byte, error) {
	if r.fail.Load() {
		return nil, errOutage
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.objects[name]
	if !ok {
		return nil, fmt.Errorf("remote: %s: %w", name, chunkstore.ErrNotExist)
	}
	return b, nil
}

func (r *remote) ReadRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b, err := r.get(name)
	if err != nil {
		return nil, err
	}
	if off < 0 || length < 0 || off+length > int64(len(b)) {
		return nil, fmt.Errorf("remote: %s: range [%d, +%d) outside %d bytes: %w", name, off, length, len(b), io.ErrUnexpectedEOF)
	}
	return io.NopCloser(bytes.NewReader(b[off : off+length])), nil
}

func (r *remote) Stat(ctx context.Context, name string) (int64, error) {
	b, err := r.get(name)
	return int64(len(b)), err
}

func (r *remote) Delete(ctx context.Context, name string) error {
	if r.fail.Load() {
		return errOutage
	}
	r.mu.Lock()
	delete(r.objects, name)
	r.mu.Unlock()
	r.deleted.Store(true)
	return nil
}

func (r *remote) List(ctx context.Context, fn func(name string, size int64) error) error {
	if r.fail.Load() {
		return errOutage
	}
	r.mu.Lock()
	names := slices.Sorted(maps.Keys(r.objects))
	sizes := make([]int64, len(names))
	for i, n := range names {
		sizes[i] = int64(len(r.objects[n]))
	}
	r.mu.Unlock()
	for i, n := range names {
		if err := fn(n, sizes[i]); err != nil {
			return err
		}
	}
	return nil
}
