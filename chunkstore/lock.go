package chunkstore

import (
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// lockStore takes the store's lock file. On the operating system's file
// system it is an flock(2) (lockDir), which, unlike the fcntl lock of
// vfs.Default.Lock, no other descriptor of the file can release; on any
// other FS (tests) it is that FS's Lock.
func lockStore(fsys vfs.FS, path string) (io.Closer, error) {
	if fsys == vfs.Default {
		return lockDir(path)
	}
	l, err := fsys.Lock(path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: store is open elsewhere: %w", path, err)
	}
	return l, nil
}
