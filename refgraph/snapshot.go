package refgraph

import (
	"context"
	"fmt"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is a read-only view of the index as it was at one moment,
// which later batches do not change: a long scan (fsck) reads one while
// writers go on. Close it when done; until then Pebble keeps the versions
// of records that later batches overwrite or delete.
type Snapshot struct {
	s *pebble.Snapshot
}

// Snapshot returns a view of the index as it is now.
func (g *Graph) Snapshot() *Snapshot { return &Snapshot{g.db.NewSnapshot()} }

// Close releases the snapshot.
func (s *Snapshot) Close() error { return s.s.Close() }

// Chunks calls fn for every chunk record, in ID order.
func (s *Snapshot) Chunks(ctx context.Context, fn func(Chunk) error) error {
	return scanChunks(ctx, s.s, fn)
}

// Packs calls fn for every pack record, in name order.
func (s *Snapshot) Packs(ctx context.Context, fn func(Pack) error) error {
	return scanRecords(ctx, s.s, prefixPack, func(k, v []byte) error {
		p, err := decodePack(string(k), v)
		if err != nil {
			return err
		}
		return fn(p)
	})
}

// Chunks calls fn for every chunk record, in ID order, as the index is
// while it scans.
func (g *Graph) Chunks(fn func(Chunk) error) error {
	return scanChunks(context.Background(), g.db, fn)
}

func scanChunks(ctx context.Context, r snapReader, fn func(Chunk) error) error {
	return scanRecords(ctx, r, prefixChunk, func(k, v []byte) error {
		var id chunkstore.ID
		if len(k) != len(id) {
			return fmt.Errorf("refgraph: chunk key %x is no chunk ID", k)
		}
		copy(id[:], k)
		c, err := decodeChunk(id, v)
		if err != nil {
			return err
		}
		return fn(c)
	})
}

// scanRecords calls fn for each record under prefix, with the key's rest,
// stopping early when ctx ends.
func scanRecords(ctx context.Context, r snapReader, prefix string, fn func(rest, value []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		return fmt.Errorf("refgraph: iterate: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			it.Close()
			return ctx.Err()
		}
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key()[len(prefix):], v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Error(); err != nil {
		it.Close()
		return err
	}
	return it.Close()
}
