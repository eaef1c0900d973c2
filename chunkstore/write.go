package chunkstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/restic/chunker"
)

// Location is where a chunk's stored bytes are.
type Location struct {
	Pack       string // pack name (random 128-bit hex chosen when the pack is opened)
	Offset     int64  // offset of the chunk's stored bytes inside the pack
	StoredLen  uint32 // bytes in the pack (compressed or raw)
	RawLen     uint32 // uncompressed length
	Compressed bool   // zstd
}

// Chunk is one chunk of a written stream.
type Chunk struct {
	ID     ID
	RawLen uint32
	Loc    *Location // nil when known(ID) returned true (deduplicated, not written)
}

// ingestJob is one chunk travelling through Write's pipeline.
type ingestJob struct {
	rawBuf    *[]byte // pooled; raw aliases it
	raw       []byte
	storedBuf *[]byte // pooled compressed bytes, nil when stored raw
	stored    []byte
	crc       uint32 // crc32c of the bytes to store
	id        ID
	known     bool
	owner     *ingestJob // the job of this call that writes id (maybe itself); nil if known
	done      chan struct{}
}

// ingestCall is the state one Write shares between its goroutines.
type ingestCall struct {
	s     *Store
	known func(ID) bool

	mu         sync.Mutex // serializes known() and guards the maps
	knownCache map[ID]bool
	claims     map[ID]*ingestJob
}

// Write cuts r into content-defined chunks and stores every chunk for which
// known returns false, once per call: a chunk repeated within r is written
// at its first occurrence and later occurrences share its Location. Chunks
// are zstd compressed when that makes them smaller. It returns all chunks
// in stream order (known ones with a nil Loc) and the stream's size. When
// it returns nil every pack it wrote into is durable.
//
// known may be nil (nothing is known). It is called at most once per
// distinct chunk, never concurrently within one Write, but from a goroutine
// other than the caller's.
//
// Chunking runs in the calling goroutine while hashing and compression run
// in a few worker goroutines, with a bounded number of chunks in flight (see
// Options.IngestConcurrency); appends
// to the open pack are serialized across Writes. When a pack reaches the
// pack size Write seals it before going on.
func (s *Store) Write(ctx context.Context, r io.Reader, known func(ID) bool) ([]Chunk, int64, error) {
	if err := s.enter(); err != nil {
		return nil, 0, fmt.Errorf("chunkstore: write: %w", err)
	}
	defer s.inflight.Done()
	select {
	case s.ingest <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("chunkstore: write: %w", ctx.Err())
	}
	defer func() { <-s.ingest }()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := &ingestCall{s: s, known: known, knownCache: make(map[ID]bool), claims: make(map[ID]*ingestJob)}

	window := s.workers + 2
	slots := make(chan struct{}, window)     // jobs in flight; released by the appender
	ordered := make(chan *ingestJob, window) // stream order, to the appender
	work := make(chan *ingestJob, s.workers) // to the hash/compress workers

	var wg sync.WaitGroup
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				c.process(j)
				close(j.done)
			}
		}()
	}
	type appendResult struct {
		chunks  []Chunk
		touched map[*openPack]int64
		err     error
	}
	resc := make(chan appendResult, 1)
	go func() {
		chunks, touched, err := c.appendLoop(ctx, ordered, slots)
		if err != nil {
			cancel(err)
		}
		resc <- appendResult{chunks, touched, err}
	}()

	size, chunkErr := c.chunkLoop(ctx, r, slots, ordered, work)
	wg.Wait()
	res := <-resc
	switch {
	case res.err != nil:
		return nil, 0, fmt.Errorf("chunkstore: write: %w", res.err)
	case chunkErr != nil:
		return nil, 0, fmt.Errorf("chunkstore: write: %w", chunkErr)
	}
	for p, end := range res.touched {
		if err := p.syncTo(end); err != nil {
			return nil, 0, fmt.Errorf("chunkstore: write: %w", err)
		}
	}
	return res.chunks, size, nil
}

// chunkLoop cuts r into chunks and feeds them to the pipeline. It closes
// ordered and work when done.
func (c *ingestCall) chunkLoop(ctx context.Context, r io.Reader, slots chan struct{}, ordered, work chan<- *ingestJob) (int64, error) {
	defer close(work)
	defer close(ordered)
	s := c.s
	ch := s.chunkers.Get().(*chunker.Chunker)
	defer s.chunkers.Put(ch)
	ch.ResetWithBoundaries(r, s.cfg.Polynomial, uint(s.cfg.MinChunk), uint(s.cfg.MaxChunk))
	ch.SetAverageBits(s.cfg.AverageBits)  // after Reset, which restores the default
	defer ch.Reset(nil, s.cfg.Polynomial) // do not keep r alive in the pool

	var size int64
	for {
		if err := context.Cause(ctx); err != nil {
			return size, err
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return size, context.Cause(ctx)
		}
		buf := s.getBuf()
		chunk, err := ch.Next(*buf)
		if err != nil {
			s.putBuf(buf)
			<-slots
			if errors.Is(err, io.EOF) {
				return size, nil
			}
			return size, fmt.Errorf("read: %w", err)
		}
		*buf = chunk.Data[:0] // keep the buffer if the chunker grew it
		size += int64(chunk.Length)
		j := &ingestJob{rawBuf: buf, raw: chunk.Data, done: make(chan struct{})}
		ordered <- j // never blocks: capacity is the window
		work <- j
	}
}

// process hashes a chunk, asks known once per distinct ID, claims the ID
// for this call if it is new, and compresses it if it claimed it.
func (c *ingestCall) process(j *ingestJob) {
	j.id = sha256.Sum256(j.raw)
	c.mu.Lock()
	k, ok := c.knownCache[j.id]
	if !ok {
		k = c.known != nil && c.known(j.id)
		c.knownCache[j.id] = k
	}
	switch {
	case k:
		j.known = true
	case c.claims[j.id] != nil:
		j.owner = c.claims[j.id]
	default:
		c.claims[j.id] = j
		j.owner = j
	}
	c.mu.Unlock()
	if j.owner != j {
		return
	}
	s := c.s
	buf := s.getBuf()
	out := s.enc.EncodeAll(j.raw, (*buf)[:0])
	if len(out) < len(j.raw) {
		*buf = out[:0]
		j.storedBuf, j.stored = buf, out
	} else {
		*buf = out[:0]
		s.putBuf(buf)
		j.stored = j.raw
	}
	j.crc = crc32.Checksum(j.stored, crcTable())
}

// appendLoop takes jobs in stream order and appends new chunks to packs,
// sealing packs that fill up. After an error it only drains the pipeline.
func (c *ingestCall) appendLoop(ctx context.Context, ordered <-chan *ingestJob, slots <-chan struct{}) ([]Chunk, map[*openPack]int64, error) {
	s := c.s
	var (
		chunks  []Chunk
		written = make(map[ID]*Location)
		touched = make(map[*openPack]int64)
		err     error
	)
	// Jobs are released only here, in stream order: a job another one
	// depends on (its owner) comes later or is the job itself.
	release := func(j *ingestJob) {
		s.putBuf(j.rawBuf)
		s.putBuf(j.storedBuf)
		j.raw, j.stored = nil, nil
		<-slots
	}
	for j := range ordered {
		<-j.done
		if err != nil {
			release(j)
			continue
		}
		ch := Chunk{ID: j.id, RawLen: uint32(len(j.raw))}
		if !j.known {
			loc, ok := written[j.id]
			if !ok {
				o := j.owner
				<-o.done // o is in flight: it claimed the ID in a worker
				var l Location
				var p, full *openPack
				l, p, full, err = s.appendRecord(o.id, uint32(len(o.raw)), o.stored, o.storedBuf != nil, o.crc)
				if err != nil {
					release(j)
					continue
				}
				loc = &l
				written[j.id] = loc
				touched[p] = max(touched[p], l.Offset+int64(l.StoredLen))
				if full != nil {
					// A failed hand-over is retried later and the data is
					// durable in staging; a failed trailer write or fsync
					// surfaces through syncTo below.
					_ = s.seal(ctx, full)
				}
			}
			l := *loc
			ch.Loc = &l
		}
		chunks = append(chunks, ch)
		release(j)
	}
	return chunks, touched, err
}
