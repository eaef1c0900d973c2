package chunkstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/restic/chunker"
)

const (
	configVersion  = 1
	configFileName = "config.json"

	// maxChunkLimit bounds MaxChunk: a chunk and its buffers live in memory.
	maxChunkLimit = 256 << 20
)

// config is the store's config.json: fixed when the store is created.
type config struct {
	Version     int         `json:"version"`
	Polynomial  chunker.Pol `json:"chunker_polynomial"`
	MinChunk    int         `json:"min_chunk_size"`
	MaxChunk    int         `json:"max_chunk_size"`
	AverageBits int         `json:"chunker_average_bits"`
}

func (c config) validate() error {
	switch {
	case c.Version != configVersion:
		return fmt.Errorf("unsupported config version %d (want %d)", c.Version, configVersion)
	case c.Polynomial.Deg() != 53 || !c.Polynomial.Irreducible():
		return fmt.Errorf("chunker polynomial %v is not an irreducible polynomial of degree 53", c.Polynomial)
	}
	return validateChunkSizes(c.MinChunk, c.MaxChunk, c.AverageBits)
}

func validateChunkSizes(minSize, maxSize, averageBits int) error {
	switch {
	case minSize < 64:
		return fmt.Errorf("min chunk size %d is below the chunker window of 64 bytes", minSize)
	case maxSize < minSize:
		return fmt.Errorf("max chunk size %d is below min chunk size %d", maxSize, minSize)
	case maxSize > maxChunkLimit:
		return fmt.Errorf("max chunk size %d exceeds %d", maxSize, maxChunkLimit)
	case averageBits < 6 || averageBits > 30:
		return fmt.Errorf("chunker average bits %d outside [6, 30]", averageBits)
	}
	return nil
}

// loadOrCreateConfig reads Dir/config.json, or writes a new one with a
// random polynomial and the sizes in opts when there is none.
func loadOrCreateConfig(fsys vfs.FS, dir string, opts Options) (config, bool, error) {
	path := filepath.Join(dir, configFileName)
	b, err := fsutil.ReadFile(fsys, path)
	switch {
	case err == nil:
		var c config
		if err := json.Unmarshal(b, &c); err != nil {
			return config{}, false, fmt.Errorf("read %s: %w", path, err)
		}
		if err := c.validate(); err != nil {
			return config{}, false, fmt.Errorf("read %s: %w", path, err)
		}
		return c, false, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return config{}, false, fmt.Errorf("read config: %w", err)
	}
	pol, err := chunker.RandomPolynomial()
	if err != nil {
		return config{}, false, fmt.Errorf("create config: %w", err)
	}
	c := config{
		Version:     configVersion,
		Polynomial:  pol,
		MinChunk:    opts.MinChunk,
		MaxChunk:    opts.MaxChunk,
		AverageBits: opts.AverageBits,
	}
	if err := c.validate(); err != nil {
		return config{}, false, fmt.Errorf("create config: %w", err)
	}
	if err := writeConfig(fsys, dir, c); err != nil {
		return config{}, false, err
	}
	return c, true, nil
}

// writeConfig writes config.json atomically: temp file, fsync, rename,
// fsync of the directory.
func writeConfig(fsys vfs.FS, dir string, c config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	b = append(b, '\n')
	if err := fsutil.WriteFileAtomic(fsys, filepath.Join(dir, configFileName), b); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
