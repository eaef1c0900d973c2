package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// LocalBackend keeps objects as files under a directory, fanned out into
// subdirectories named by the first two characters of the object name
// (dir/ab/abcdef...). Put writes a temporary file that is fsynced, renamed
// into place, and made durable by fsyncing the directory; Adopt hard-links
// the fsynced file into place, fsyncs that directory, and only then
// removes the old name (and fsyncs its directory), so that at every
// instant the object is durable under at least one name.
type LocalBackend struct {
	fs  vfs.FS
	dir string
}

var (
	_ Backend = (*LocalBackend)(nil)
	_ Adopter = (*LocalBackend)(nil)
	_ Stater  = (*LocalBackend)(nil)
)

// NewLocalBackend returns a LocalBackend storing objects under dir on the
// operating system's file system; dir is created if missing.
func NewLocalBackend(dir string) (*LocalBackend, error) {
	return NewLocalBackendFS(vfs.Default, dir)
}

// NewLocalBackendFS is NewLocalBackend on file system fsys.
func NewLocalBackendFS(fsys vfs.FS, dir string) (*LocalBackend, error) {
	if dir == "" {
		return nil, errors.New("chunkstore: local backend: empty directory")
	}
	fsys = fsutil.OrDefault(fsys)
	if err := fsutil.MkdirAll(fsys, dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: local backend: %w", err)
	}
	return &LocalBackend{fs: fsys, dir: dir}, nil
}

// objectPath returns the file of object name, creating its fan-out
// directory (durably) if mkdir is set.
func (b *LocalBackend) objectPath(name string, mkdir bool) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("chunkstore: local backend: invalid object name %q", name)
	}
	sub := filepath.Join(b.dir, name[:2])
	if mkdir {
		if err := fsutil.MkdirAll(b.fs, sub, 0o755); err != nil {
			return "", fmt.Errorf("chunkstore: local backend: %w", err)
		}
	}
	return filepath.Join(sub, name), nil
}

// Put implements Backend.
func (b *LocalBackend) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	dst, err := b.objectPath(name, true)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("chunkstore: local backend: put %s: negative size %d", name, size)
	}
	dir := filepath.Dir(dst)
	f, tmp, err := fsutil.CreateTemp(b.fs, dir, "."+name+".tmp-")
	if err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = b.fs.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size))
	if err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("chunkstore: local backend: put %s: got %d bytes, want %d: %w", name, n, size, io.ErrUnexpectedEOF)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	if err := b.fs.Rename(tmp, dst); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	if err := fsutil.SyncDir(b.fs, dir); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	return nil
}

// Adopt implements Adopter: it hard-links the fsynced file at path into
// place and then removes path, or copies it with Put when path is on
// another file system. An object already there under name is the same
// pack (names are random and never reused): a hand-over a crash cut short
// after the link.
func (b *LocalBackend) Adopt(ctx context.Context, name, path string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
	}
	dst, err := b.objectPath(name, true)
	if err != nil {
		return err
	}
	err = b.fs.Link(path, dst)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
		// The new name must be durable before the old one goes.
		if err := fsutil.SyncDir(b.fs, filepath.Dir(dst)); err != nil {
			return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
		}
		if err := fsutil.RemoveDurably(b.fs, path); err != nil {
			return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
		}
		return nil
	case errors.Is(err, syscall.EXDEV):
		if err := b.adoptByCopy(ctx, name, path); err != nil {
			return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
		}
		return nil
	default:
		return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
	}
}

func (b *LocalBackend) adoptByCopy(ctx context.Context, name, path string) error {
	f, err := b.fs.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := b.Put(ctx, name, f, st.Size()); err != nil {
		return err
	}
	return fsutil.RemoveDurably(b.fs, path)
}

// ReadRange implements Backend.
func (b *LocalBackend) ReadRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chunkstore: local backend: read %s: %w", name, err)
	}
	p, err := b.objectPath(name, false)
	if err != nil {
		return nil, err
	}
	f, err := b.fs.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("chunkstore: local backend: read %s: %w (%w)", name, ErrNotExist, err)
		}
		return nil, fmt.Errorf("chunkstore: local backend: read %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("chunkstore: local backend: read %s: %w", name, err)
	}
	if off < 0 || length < 0 || off > st.Size() || length > st.Size()-off {
		_ = f.Close()
		return nil, fmt.Errorf("chunkstore: local backend: read %s: range [%d, +%d) outside object of %d bytes: %w",
			name, off, length, st.Size(), io.ErrUnexpectedEOF)
	}
	return &sectionReadCloser{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f vfs.File
}

func (r *sectionReadCloser) Close() error { return r.f.Close() }

// Stat implements Stater.
func (b *LocalBackend) Stat(ctx context.Context, name string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("chunkstore: local backend: stat %s: %w", name, err)
	}
	p, err := b.objectPath(name, false)
	if err != nil {
		return 0, err
	}
	st, err := b.fs.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("chunkstore: local backend: stat %s: %w (%w)", name, ErrNotExist, err)
		}
		return 0, fmt.Errorf("chunkstore: local backend: stat %s: %w", name, err)
	}
	return st.Size(), nil
}

// Delete implements Backend.
func (b *LocalBackend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chunkstore: local backend: delete %s: %w", name, err)
	}
	p, err := b.objectPath(name, false)
	if err != nil {
		return err
	}
	if err := fsutil.RemoveDurably(b.fs, p); err != nil {
		return fmt.Errorf("chunkstore: local backend: delete %s: %w", name, err)
	}
	return nil
}

// List implements Backend. Objects come in name order; temporary files are
// skipped.
func (b *LocalBackend) List(ctx context.Context, fn func(name string, size int64) error) error {
	subs, err := b.fs.List(b.dir)
	if err != nil {
		return fmt.Errorf("chunkstore: local backend: list: %w", err)
	}
	slices.Sort(subs)
	for _, sub := range subs {
		if len(sub) != 2 {
			continue
		}
		subDir := filepath.Join(b.dir, sub)
		if st, err := b.fs.Stat(subDir); err != nil || !st.IsDir() {
			continue
		}
		names, err := b.fs.List(subDir)
		if err != nil {
			return fmt.Errorf("chunkstore: local backend: list: %w", err)
		}
		slices.Sort(names)
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("chunkstore: local backend: list: %w", err)
			}
			if !ValidName(name) || name[:2] != sub {
				continue
			}
			info, err := b.fs.Stat(filepath.Join(subDir, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			if err != nil {
				return fmt.Errorf("chunkstore: local backend: list: %w", err)
			}
			if !info.Mode().IsRegular() {
				continue
			}
			if err := fn(name, info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir fsyncs a directory so that renames and creations in it are durable.
func (s *Store) syncDir(dir string) error { return fsutil.SyncDir(s.fs, dir) }
