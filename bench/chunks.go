package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/restic/chunker"
)

type chunkID = [sha256.Size]byte

// tally counts distinct chunks.
type tally struct {
	chunks, raw, stored int64
}

func (t *tally) add(o tally) {
	t.chunks += o.chunks
	t.raw += o.raw
	t.stored += o.stored
}

// chunkSet is one store's chunks, each once: ID → stored bytes.
type chunkSet struct {
	mu     sync.Mutex
	stored map[chunkID]uint32
}

func newChunkSet() *chunkSet { return &chunkSet{stored: map[chunkID]uint32{}} }

func (s *chunkSet) has(id chunkID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.stored[id]
	return ok
}

// chunkCost is what one chunk takes, raw and stored.
type chunkCost struct{ raw, stored uint32 }

// batch collects the chunks of one blob's stream that its set lacks, to be
// added at once if the blob ends up stored that way. One goroutine fills
// it.
type batch struct {
	set *chunkSet
	new map[chunkID]chunkCost
}

func newBatch(set *chunkSet) *batch { return &batch{set: set, new: map[chunkID]chunkCost{}} }

func (b *batch) has(id chunkID) bool {
	_, ok := b.new[id]
	return ok || b.set.has(id)
}

// commit adds the batch's chunks to its set and returns those that were
// still new (a blob analysed at the same time may have added some).
func (b *batch) commit() tally {
	var t tally
	b.set.mu.Lock()
	defer b.set.mu.Unlock()
	for id, c := range b.new {
		if _, ok := b.set.stored[id]; ok {
			continue
		}
		b.set.stored[id] = c.stored
		t.chunks++
		t.raw += int64(c.raw)
		t.stored += int64(c.stored)
	}
	return t
}

func commitAll(batches []*batch) tally {
	var t tally
	for _, b := range batches {
		t.add(b.commit())
	}
	return t
}

// cutter cuts streams as chunkstore.Write does and prices new chunks as it
// stores them.
type cutter struct {
	chunker *chunker.Chunker
	buf     []byte // capacity MaxChunk, for the chunk's bytes
	zbuf    []byte // the compressed chunk
}

// cut reads r to its end, cutting it into chunks; each chunk that a batch
// lacks is compressed once and noted in that batch.
func (e *Estimator) cut(ctx context.Context, r io.Reader, batches ...*batch) error {
	c := e.cutters.Get().(*cutter)
	defer e.cutters.Put(c)
	o := e.opts
	c.chunker.ResetWithBoundaries(r, o.Polynomial, uint(o.MinChunk), uint(o.MaxChunk))
	c.chunker.SetAverageBits(o.AverageBits)  // after Reset, which restores the default
	defer c.chunker.Reset(nil, o.Polynomial) // do not keep r alive in the pool
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, err := c.chunker.Next(c.buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("chunking: %w", err)
		}
		c.buf = ch.Data[:0] // keep the buffer if the chunker grew it
		id := sha256.Sum256(ch.Data)
		stored := -1
		for _, b := range batches {
			if b.has(id) {
				continue
			}
			if stored < 0 {
				c.zbuf = e.enc.EncodeAll(ch.Data, c.zbuf[:0])
				stored = min(len(c.zbuf), len(ch.Data))
			}
			b.new[id] = chunkCost{raw: uint32(len(ch.Data)), stored: uint32(stored)}
		}
	}
}
