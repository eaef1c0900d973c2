package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrNotFound is returned by KV.Get for a missing key.
var ErrNotFound = errors.New("scan: not found")

// KV is the ordered key-value store scan keeps inventories and advisories
// in: the server's index (Pebble), under a key space of scan's own.
type KV interface {
	// Get returns a copy of key's value, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for each key with the prefix, in key order. The slices
	// are valid only during the call.
	Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error
	// Apply commits a batch atomically and durably.
	Apply(b *Batch) error
}

// Batch is a set of writes applied atomically.
type Batch struct {
	ops  []kvOp
	size int
}

type kvOp struct {
	key, value []byte
	del        bool
}

// Set writes key = value (both copied).
func (b *Batch) Set(key, value []byte) {
	b.ops = append(b.ops, kvOp{key: bytes.Clone(key), value: bytes.Clone(value)})
	b.size += len(key) + len(value)
}

// Delete removes key.
func (b *Batch) Delete(key []byte) {
	b.ops = append(b.ops, kvOp{key: bytes.Clone(key), del: true})
	b.size += len(key)
}

// Each calls fn for each write in order (del: a deletion), for a KV that
// applies batches itself.
func (b *Batch) Each(fn func(key, value []byte, del bool) error) error {
	for _, op := range b.ops {
		if err := fn(op.key, op.value, op.del); err != nil {
			return err
		}
	}
	return nil
}

// Len is the number of writes; Size their bytes.
func (b *Batch) Len() int  { return len(b.ops) }
func (b *Batch) Size() int { return b.size }

// PebbleKV is a KV over a Pebble database, every key under prefix.
type PebbleKV struct {
	db     *pebble.DB
	prefix []byte
}

var _ KV = (*PebbleKV)(nil)

// NewPebbleKV returns a KV storing its keys under prefix in db (the
// caller owns db and closes it).
func NewPebbleKV(db *pebble.DB, prefix []byte) *PebbleKV {
	return &PebbleKV{db: db, prefix: bytes.Clone(prefix)}
}

func (p *PebbleKV) key(k []byte) []byte {
	return append(append(make([]byte, 0, len(p.prefix)+len(k)), p.prefix...), k...)
}

// Get implements KV.
func (p *PebbleKV) Get(key []byte) ([]byte, error) {
	v, closer, err := p.db.Get(p.key(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("scan: index get: %w", err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// Scan implements KV.
func (p *PebbleKV) Scan(ctx context.Context, prefix []byte, fn func(key, value []byte) error) error {
	lo := p.key(prefix)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("scan: index scan: %w", err)
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
			return fmt.Errorf("scan: index scan: %w", err)
		}
		if err := fn(it.Key()[len(p.prefix):], v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scan: index scan: %w", err)
	}
	return nil
}

// Apply implements KV: one Pebble batch, committed with Sync.
func (p *PebbleKV) Apply(b *Batch) error {
	pb := p.db.NewBatch()
	defer pb.Close()
	for _, op := range b.ops {
		var err error
		if op.del {
			err = pb.Delete(p.key(op.key), nil)
		} else {
			err = pb.Set(p.key(op.key), op.value, nil)
		}
		if err != nil {
			return fmt.Errorf("scan: index batch: %w", err)
		}
	}
	if err := pb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("scan: index commit: %w", err)
	}
	return nil
}

// prefixEnd is the first key after every key with prefix p (nil: none).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
