package refgraph

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/opencontainers/go-digest"
)

// prefixScan is the key space of package scan (inventories, advisories,
// its queue and reports): refgraph hands it out and never reads it.
const prefixScan = "s/"

// Space is a key space of the index under a prefix of its own, for the
// records of another package: reads, ordered scans and atomic batches,
// each key under the prefix. Its batches do not take the writer mutex:
// nothing in them touches refgraph's records or counters.
type Space struct {
	db     *pebble.DB
	prefix []byte
}

// ScanSpace returns the key space of package scan (s/ in the key schema).
func (g *Graph) ScanSpace() *Space {
	return &Space{db: g.db, prefix: []byte(prefixScan)}
}

func (s *Space) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(s.prefix)+len(k)), s.prefix...), k...)
}

// Get returns a copy of key's value, or ErrNotFound.
func (s *Space) Get(key []byte) ([]byte, error) {
	return getFrom(s.db, s.key(key))
}

// Scan calls fn for each key with the prefix (inside the space), in key
// order; key and value are valid only during the call.
func (s *Space) Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error {
	lo := s.key(prefix)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("refgraph: iterate: %w", err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				it.Close()
				return err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("refgraph: iterate: %w", err)
		}
		if err := fn(it.Key()[len(s.prefix):], v); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// Write is one change of a Space batch: Value set at Key, or Key deleted.
type Write struct {
	Key, Value []byte
	Delete     bool
}

// Apply commits writes in one batch, durably (synced).
func (s *Space) Apply(writes []Write) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, w := range writes {
		var err error
		if w.Delete {
			err = b.Delete(s.key(w.Key), nil)
		} else {
			err = b.Set(s.key(w.Key), w.Value, nil)
		}
		if err != nil {
			return fmt.Errorf("refgraph: batch: %w", err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("refgraph: commit: %w", err)
	}
	return nil
}

// ConversionQueued reports whether blob d waits for the layer converter
// (a scan of a pending layer waits for it too, rather than decompress
// the layer as pushed).
func (g *Graph) ConversionQueued(d digest.Digest) (bool, error) { return g.has(queueKey(d)) }
