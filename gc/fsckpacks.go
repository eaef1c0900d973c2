package gc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/internal/extsort"
	"github.com/chunkyard/chunkyard/refgraph"
)

// packCheck verifies the live chunk records of an index snapshot against
// the packs' trailers.
type packCheck struct {
	g    *refgraph.Graph
	s    Store
	snap *refgraph.Snapshot
	o    FsckOptions
	dir  string
	r    *FsckReport
	buf  extsort.Buffer // for one sort after the other
}

// liveChunk is a live chunk record, sorted by pack and offset on disk as
//
//	key:   pack \x00 offset (8 bytes, big endian)
//	value: chunk ID (32 bytes), stored length, raw length (uvarints), flags (1 byte)
//
// (pack names hold no NUL: chunkstore.ValidName).
type liveChunk struct {
	id  chunkstore.ID
	loc chunkstore.Location
}

func chunkSortKey(b []byte, loc chunkstore.Location) []byte {
	b = append(append(b, loc.Pack...), 0)
	return binary.BigEndian.AppendUint64(b, uint64(loc.Offset))
}

func chunkSortValue(b []byte, c refgraph.Chunk) []byte {
	b = append(b, c.ID[:]...)
	b = binary.AppendUvarint(b, uint64(c.Loc.StoredLen))
	b = binary.AppendUvarint(b, uint64(c.Loc.RawLen))
	if c.Loc.Compressed {
		return append(b, 1)
	}
	return append(b, 0)
}

// decodeLiveChunk decodes a sorted record; pack is the name of the pack
// of the record before, reused if it is this one's.
func decodeLiveChunk(key, value []byte, pack string) (liveChunk, error) {
	var c liveChunk
	if len(key) < 9 || key[len(key)-9] != 0 || len(value) < len(c.id)+3 {
		return c, fmt.Errorf("bad sorted chunk record %x %x", key, value)
	}
	c.loc.Pack = pack
	if name := key[:len(key)-9]; string(name) != pack {
		c.loc.Pack = string(name)
	}
	c.loc.Offset = int64(binary.BigEndian.Uint64(key[len(key)-8:]))
	copy(c.id[:], value)
	rest := value[len(c.id):]
	stored, n := binary.Uvarint(rest)
	if n <= 0 {
		return c, fmt.Errorf("bad sorted chunk record %x", value)
	}
	raw, m := binary.Uvarint(rest[n:])
	if m <= 0 || len(rest) != n+m+1 {
		return c, fmt.Errorf("bad sorted chunk record %x", value)
	}
	c.loc.StoredLen, c.loc.RawLen, c.loc.Compressed = uint32(stored), uint32(raw), rest[n+m] == 1
	return c, nil
}

// chunksInPacks sorts the snapshot's live chunk records by pack and
// offset, then reads each pack's trailer once (Readers at a time, in
// order) and joins it with the pack's records.
func (pc *packCheck) chunksInPacks(ctx context.Context) error {
	open := map[string]bool{} // listed after the snapshot: a pack not open now is in the backend
	for _, p := range pc.s.OpenPacks() {
		open[p] = true
	}
	sorter := extsort.New(extsort.Options{Dir: pc.dir, Memory: pc.o.Memory, Buffer: &pc.buf})
	defer func() {
		pc.r.SortRuns += sorter.Runs()
		sorter.Close()
	}()
	var key, value []byte
	err := pc.snap.Chunks(ctx, func(c refgraph.Chunk) error {
		if c.Refs == 0 || open[c.Loc.Pack] {
			return nil // dead, or in a pack whose records are checked as they are read
		}
		key, value = chunkSortKey(key[:0], c.Loc), chunkSortValue(value[:0], c)
		return sorter.Add(key, value)
	})
	if err != nil {
		return err
	}
	it, err := sorter.Sort(ctx)
	if err != nil {
		return err
	}
	return pc.readPacks(ctx, it)
}

// packJob is one pack's live chunk records and, once read, its trailer.
type packJob struct {
	pack    string
	chunks  []liveChunk
	entries []chunkstore.PackEntry
	err     error
	done    chan struct{}
}

// readPacks groups the sorted records by pack and has Readers workers
// read the trailers while the packs are verified in order; at most
// Readers+2 packs' records and trailers are held at a time.
func (pc *packCheck) readPacks(parent context.Context, it *extsort.Iter) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	jobs := make(chan *packJob)
	inOrder := make(chan *packJob, pc.o.Readers)
	var wg sync.WaitGroup
	for range pc.o.Readers {
		wg.Go(func() {
			for j := range jobs {
				j.entries, j.err = pc.s.ReadTrailer(ctx, j.pack)
				close(j.done)
			}
		})
	}
	var groupErr error
	wg.Go(func() {
		defer close(jobs)
		defer close(inOrder)
		groupErr = groupByPack(ctx, it, func(j *packJob) bool {
			select {
			case inOrder <- j:
			case <-ctx.Done():
				return false
			}
			select {
			case jobs <- j:
				return true
			case <-ctx.Done():
				return false
			}
		})
	})
	var err error
	for j := range inOrder {
		select {
		case <-j.done:
		case <-ctx.Done():
		}
		if err == nil && ctx.Err() == nil {
			err = pc.verify(ctx, j)
		}
		if err != nil {
			cancel() // the rest drains
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	if groupErr != nil && !errors.Is(groupErr, context.Canceled) {
		return groupErr
	}
	return parent.Err()
}

// groupByPack reads the sorted records and hands over each pack's; send
// returns false to stop.
func groupByPack(ctx context.Context, it *extsort.Iter, send func(*packJob) bool) error {
	var j *packJob
	for it.Next() {
		pack := ""
		if j != nil {
			pack = j.pack
		}
		c, err := decodeLiveChunk(it.Key(), it.Value(), pack)
		if err != nil {
			return err
		}
		if j != nil && j.pack != c.loc.Pack {
			if !send(j) {
				return ctx.Err()
			}
			j = nil
		}
		if j == nil {
			j = &packJob{pack: c.loc.Pack, done: make(chan struct{})}
		}
		j.chunks = append(j.chunks, c)
	}
	if err := it.Err(); err != nil {
		return err
	}
	if j != nil && !send(j) {
		return ctx.Err()
	}
	return nil
}

// verify joins a pack's live chunk records (by offset) with its trailer.
// A disagreement is re-checked against the index as it is now.
func (pc *packCheck) verify(ctx context.Context, j *packJob) error {
	if j.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		still, err := pc.stillLive(j.pack)
		if err != nil || !still {
			return err
		}
		pc.r.packProblem("pack %s: %d live chunks, but it cannot be read: %v", j.pack, len(j.chunks), j.err)
		return nil
	}
	pc.r.PacksChecked++
	entries := j.entries
	if !slices.IsSortedFunc(entries, byOffset) {
		entries = slices.SortedFunc(slices.Values(entries), byOffset)
	}
	i := 0
	for _, c := range j.chunks {
		for i < len(entries) && entries[i].Loc.Offset < c.loc.Offset {
			i++
		}
		if i < len(entries) && entries[i].ID == c.id && entries[i].Loc == c.loc {
			continue
		}
		if moved, err := pc.changed(c); err != nil {
			return err
		} else if moved {
			continue
		}
		pc.r.packProblem("chunk %s: no matching record at %s+%d", c.id, c.loc.Pack, c.loc.Offset)
	}
	return nil
}

func byOffset(a, b chunkstore.PackEntry) int { return cmp.Compare(a.Loc.Offset, b.Loc.Offset) }

// changed reports whether chunk c is no longer live at its location in
// the index as it is now (moved by a repack, released, dropped).
func (pc *packCheck) changed(c liveChunk) (bool, error) {
	cur, err := pc.g.Chunk(c.id)
	if errors.Is(err, refgraph.ErrNotFound) || err == nil && (cur.Refs == 0 || cur.Loc != c.loc) {
		pc.r.ChangedMeanwhile++
		return true, nil
	}
	return false, err
}

// stillLive reports whether pack still holds live chunks, not retired, in
// the index as it is now.
func (pc *packCheck) stillLive(pack string) (bool, error) {
	if retired, err := pc.g.Retired(pack); err != nil || retired {
		if retired {
			pc.r.ChangedMeanwhile++
		}
		return false, err
	}
	p, err := pc.g.Pack(pack)
	if errors.Is(err, refgraph.ErrNotFound) || err == nil && p.LiveChunks == 0 {
		pc.r.ChangedMeanwhile++
		return false, nil
	}
	return err == nil, err
}

// unknownPacks counts the packs in the backend the index does not know:
// the backend's listing, sorted on disk, joined with the snapshot's pack
// records; a pack the snapshot lacks but the index has by now is known.
func (pc *packCheck) unknownPacks(ctx context.Context) error {
	listed := extsort.New(extsort.Options{Dir: pc.dir, Memory: pc.o.Memory, Buffer: &pc.buf})
	defer func() {
		pc.r.SortRuns += listed.Runs()
		listed.Close()
	}()
	if err := pc.s.ListPacks(ctx, func(name string, _ int64) error { return listed.Add([]byte(name), nil) }); err != nil {
		return fmt.Errorf("listing packs: %w", err)
	}
	it, err := listed.Sort(ctx)
	if err != nil {
		return err
	}
	more := it.Next()
	err = pc.snap.Packs(ctx, func(p refgraph.Pack) error {
		for ; more && bytes.Compare(it.Key(), []byte(p.Name)) <= 0; more = it.Next() {
			if string(it.Key()) != p.Name {
				if err := pc.unknown(string(it.Key())); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for ; err == nil && more; more = it.Next() {
		err = pc.unknown(string(it.Key()))
	}
	return errors.Join(err, it.Err())
}

func (pc *packCheck) unknown(pack string) error {
	_, err := pc.g.Pack(pack)
	switch {
	case errors.Is(err, refgraph.ErrNotFound):
		pc.r.UnknownPacks++
		return nil
	case err != nil:
		return err
	}
	return nil // indexed since the snapshot
}
