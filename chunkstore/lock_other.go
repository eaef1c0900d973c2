//go:build !unix

package chunkstore

import (
	"fmt"
	"os"
)

// lockDir opens path without locking: flock is unix only.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
