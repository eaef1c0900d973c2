package chunkstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// LocalBackend keeps objects as files under a directory, fanned out into
// subdirectories named by the first two characters of the object name
// (dir/ab/abcdef...). Writes go to a temporary file that is fsynced, renamed
// into place, and made durable by fsyncing the directory.
type LocalBackend struct {
	dir string
}

var (
	_ Backend = (*LocalBackend)(nil)
	_ Adopter = (*LocalBackend)(nil)
	_ Stater  = (*LocalBackend)(nil)
)

// NewLocalBackend returns a LocalBackend storing objects under dir, which is
// created if missing.
func NewLocalBackend(dir string) (*LocalBackend, error) {
	if dir == "" {
		return nil, errors.New("chunkstore: local backend: empty directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: local backend: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, fmt.Errorf("chunkstore: local backend: %w", err)
	}
	return &LocalBackend{dir: dir}, nil
}

// objectPath returns the file of object name, creating its fan-out
// directory if mkdir is set.
func (b *LocalBackend) objectPath(name string, mkdir bool) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("chunkstore: local backend: invalid object name %q", name)
	}
	sub := filepath.Join(b.dir, name[:2])
	if mkdir {
		switch err := os.Mkdir(sub, 0o755); {
		case err == nil:
			if err := syncDir(b.dir); err != nil {
				return "", fmt.Errorf("chunkstore: local backend: %w", err)
			}
		case errors.Is(err, fs.ErrExist):
		default:
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
	f, err := os.CreateTemp(filepath.Dir(dst), "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
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
	if err := f.Close(); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("chunkstore: local backend: put %s: %w", name, err)
	}
	return nil
}

// Adopt implements Adopter: it renames the fsynced file at path into place,
// or copies it with Put when path is on another file system.
func (b *LocalBackend) Adopt(ctx context.Context, name, path string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
	}
	dst, err := b.objectPath(name, true)
	if err != nil {
		return err
	}
	err = os.Rename(path, dst)
	if errors.Is(err, syscall.EXDEV) {
		err = b.adoptByCopy(ctx, name, path)
	}
	if err != nil {
		return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("chunkstore: local backend: adopt %s: %w", name, err)
	}
	return nil
}

func (b *LocalBackend) adoptByCopy(ctx context.Context, name, path string) error {
	f, err := os.Open(path)
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
	return os.Remove(path)
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
	f, err := os.Open(p)
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
	f *os.File
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
	st, err := os.Stat(p)
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
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("chunkstore: local backend: delete %s: %w", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("chunkstore: local backend: delete %s: %w", name, err)
	}
	return nil
}

// List implements Backend. Objects come in name order; temporary files are
// skipped.
func (b *LocalBackend) List(ctx context.Context, fn func(name string, size int64) error) error {
	subs, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("chunkstore: local backend: list: %w", err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(b.dir, sub.Name()))
		if err != nil {
			return fmt.Errorf("chunkstore: local backend: list: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("chunkstore: local backend: list: %w", err)
			}
			name := e.Name()
			if !e.Type().IsRegular() || !ValidName(name) || name[:2] != sub.Name() {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			if err != nil {
				return fmt.Errorf("chunkstore: local backend: list: %w", err)
			}
			if err := fn(name, info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir fsyncs a directory so that renames and creations in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
