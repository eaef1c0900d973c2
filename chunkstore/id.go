package chunkstore

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// ID identifies a chunk: the sha256 of its uncompressed bytes.
type ID [32]byte

// String returns the ID as 64 lowercase hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses the 64-hex-digit form written by ID.String.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return ID{}, fmt.Errorf("chunkstore: parse id %q: want %d hex digits, got %d", s, 2*len(id), len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ID{}, fmt.Errorf("chunkstore: parse id %q: %w", s, err)
	}
	return id, nil
}

var (
	// ErrNotExist is wrapped by errors about missing objects; test with errors.Is.
	ErrNotExist = errors.New("chunkstore: not exist")
	// ErrCorrupt is wrapped by errors about data that fails a check: a CRC,
	// a chunk ID, a bound, a magic number.
	ErrCorrupt = errors.New("chunkstore: corrupt data")
	// ErrClosed is returned by Write and ReadChunk after Close.
	ErrClosed = errors.New("chunkstore: store closed")
	// ErrLocked: another Store, in this or another process, has the
	// directory open.
	ErrLocked = errors.New("chunkstore: store is open elsewhere")
)
