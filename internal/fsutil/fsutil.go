// Package fsutil holds the durable file operations chunkyard builds on
// Pebble's file-system interface (vfs.FS), for what vfs.FS does not offer
// in one call: fsyncing a directory, creating directories so that they
// survive a power loss, temporary files, atomic replacement of a small
// file, and a best-effort truncate.
//
// Every store file goes through a vfs.FS so that tests can run the real
// code on vfs.NewCrashableMem (whose CrashClone drops what was not
// fsynced, as a power loss does) or under vfs/errorfs (disk full, I/O
// errors). Production passes vfs.Default.
//
// The rules these helpers follow: a file's data is durable after its
// Sync; its directory entry (after a create, rename, link or remove) is
// durable only after the directory itself is synced, and a new directory
// only after its parent is.
package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// OrDefault returns fsys, or vfs.Default if it is nil.
func OrDefault(fsys vfs.FS) vfs.FS {
	if fsys == nil {
		return vfs.Default
	}
	return fsys
}

// SyncDir fsyncs directory dir, making the creations, renames, links and
// removals of its entries durable.
func SyncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
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

// MkdirAll creates dir and any missing parents with permissions perm,
// fsyncing the parent of each directory it creates, so that the whole path
// survives a power loss. An existing directory is left as it is.
func MkdirAll(fsys vfs.FS, dir string, perm os.FileMode) error {
	if _, err := fsys.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	// Collect the missing ancestors, nearest first.
	var missing []string
	for d := dir; ; {
		if _, err := fsys.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
		missing = append(missing, d)
		parent := fsys.PathDir(d)
		if parent == d {
			break
		}
		d = parent
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := fsys.MkdirAll(d, perm); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
		if parent := fsys.PathDir(d); parent != d {
			if err := SyncDir(fsys, parent); err != nil {
				return fmt.Errorf("mkdir %s: %w", d, err)
			}
		}
	}
	return nil
}

// CreateTemp creates a new file in dir named prefix followed by random
// hex digits, open for reading and writing, and returns it with its path.
// Nothing about it is durable: a temporary file that must survive is
// synced and its directory too.
func CreateTemp(fsys vfs.FS, dir, prefix string) (vfs.File, string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, "", fmt.Errorf("create temp in %s: %w", dir, err)
	}
	path := fsys.PathJoin(dir, prefix+hex.EncodeToString(b[:]))
	f, err := fsys.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, "", fmt.Errorf("create temp in %s: %w", dir, err)
	}
	return f, path, nil
}

// ReadFile reads a whole (small) file.
func ReadFile(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFileAtomic replaces path with data durably: a temporary file in the
// same directory is written and synced, renamed over path, and the
// directory synced. A crash leaves the old content or the new, and at worst
// a temporary file whose name starts with "." + the base name + ".tmp-".
func WriteFileAtomic(fsys vfs.FS, path string, data []byte) (err error) {
	dir := fsys.PathDir(path)
	f, tmp, err := CreateTemp(fsys, dir, "."+fsys.PathBase(path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = fsys.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(fsys, dir)
}

// RemoveDurably removes path and syncs its directory. A missing file is
// no error.
func RemoveDurably(fsys vfs.FS, path string) error {
	if err := fsys.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return SyncDir(fsys, fsys.PathDir(path))
}

// Truncate cuts f to size if its implementation can (files of vfs.Default
// can; in-memory test files cannot) and reports whether it did. Callers
// must not need it for correctness: it only tidies.
func Truncate(f vfs.File, size int64) (bool, error) {
	t, ok := f.(interface{ Truncate(int64) error })
	if !ok {
		return false, nil
	}
	return true, t.Truncate(size)
}
