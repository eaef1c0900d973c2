package refgraph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// Check's phases over storage and bookkeeping: chunks, packs, the
// conversion queue, encoder counts, index-wide counters.

// chunks joins the chunk records (c/) with the references recounted from
// the blobs: a chunk's refs count its occurrences in blob records. Each
// chunk record adds to its pack's sums (sorted by pack name).
func (c *checker) chunks(chunkRefs *sorter) (*sorter, error) {
	packSums := c.newSorter(0, combinePackSums)
	streams, err := open(c.keys(prefixChunk), c.output(chunkRefs))
	if err != nil {
		return packSums, err
	}
	const record, recount = 0, 1
	var sum []byte
	err = c.join(streams, func(key []byte, on []bool) error {
		var id chunkstore.ID
		if len(key) != len(id) {
			c.r.problem(true, "chunk key %x is no chunk ID", key)
			return nil
		}
		copy(id[:], key)
		var want int64
		if on[recount] {
			want = count(streams[recount].value())
		}
		if !on[record] {
			c.r.problem(true, "chunk %s: held by a blob, but not indexed", id)
			return nil
		}
		ch, err := decodeChunk(id, streams[record].value())
		if err != nil {
			c.r.problem(true, "%v", err)
			return nil
		}
		c.r.Chunks++
		if ch.Refs != want {
			c.r.problem(false, "chunk %s: refs %d, blob references %d", id, ch.Refs, want)
			if err := c.fix(fix{kind: fixChunk, key: key, a: want - ch.Refs}); err != nil {
				return err
			}
		}
		ps := packSum{records: 1, example: id}
		if want > 0 {
			ps.truthBytes, ps.truthChunks = int64(ch.Loc.StoredLen), 1
		}
		if ch.Refs > 0 {
			ps.storedBytes, ps.storedChunks = int64(ch.Loc.StoredLen), 1
		}
		sum = ps.append(sum[:0])
		if err := packSums.Add([]byte(ch.Loc.Pack), sum); err != nil {
			return err
		}
		c.countChunk(ch, want)
		return nil
	})
	return packSums, err
}

// countChunk adds a chunk to the counters; want is its recounted refs.
func (c *checker) countChunk(ch Chunk, want int64) {
	for _, x := range []struct {
		s    *Stats
		refs int64
	}{{&c.truth, want}, {&c.stored, ch.Refs}} {
		if x.refs > 0 {
			x.s.Chunks++
			x.s.ChunkRawBytes += int64(ch.Loc.RawLen)
			x.s.LiveStoredBytes += int64(ch.Loc.StoredLen)
		}
		if x.refs >= 2 {
			x.s.SharedChunks++
		}
	}
}

// packSum is what a pack's chunk records add up to: live bytes and chunks
// by the recounted refs (truth) and by the refs as stored, how many
// records point into the pack, and the smallest of their IDs (to name one
// in a report).
type packSum struct {
	truthBytes, truthChunks, storedBytes, storedChunks, records int64
	example                                                     chunkstore.ID
}

func (p packSum) append(b []byte) []byte {
	for _, n := range []int64{p.truthBytes, p.truthChunks, p.storedBytes, p.storedChunks, p.records} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	return append(b, p.example[:]...)
}

func decodePackSum(b []byte) packSum {
	r := reader{b: b}
	var p packSum
	for _, n := range []*int64{&p.truthBytes, &p.truthChunks, &p.storedBytes, &p.storedChunks, &p.records} {
		*n = int64(r.uvarint())
	}
	copy(p.example[:], r.bytes(len(p.example)))
	return p
}

func combinePackSums(acc, v []byte) []byte {
	a, b := decodePackSum(acc), decodePackSum(v)
	a.truthBytes += b.truthBytes
	a.truthChunks += b.truthChunks
	a.storedBytes += b.storedBytes
	a.storedChunks += b.storedChunks
	a.records += b.records
	if bytes.Compare(b.example[:], a.example[:]) < 0 {
		a.example = b.example
	}
	return a.append(acc[:0])
}

// packs joins the pack records (p/) with their chunk records' sums and the
// retired packs (x/): a pack's live bytes and chunks sum its live chunk
// records; no chunk record points into a pack that is not indexed, or
// retired.
func (c *checker) packs(packSums *sorter) error {
	streams, err := open(c.keys(prefixPack), c.output(packSums), c.keys(prefixRetired))
	if err != nil {
		return err
	}
	const record, sums, retired = 0, 1, 2
	return c.join(streams, func(key []byte, on []bool) error {
		name := string(key)
		var ps packSum
		if on[sums] {
			ps = decodePackSum(streams[sums].value())
			if on[retired] {
				c.r.problems(true, int(ps.records), "pack %s: garbage collection retired it, but %d chunk records point into it (chunk %s among them)", name, ps.records, ps.example)
			}
		}
		if !on[record] {
			if on[sums] {
				c.r.problem(true, "pack %s: %d chunk records point into it, but it is not indexed", name, ps.records)
			}
			return nil
		}
		p, err := decodePack(name, streams[record].value())
		if err != nil {
			c.r.problem(true, "%v", err)
			return nil
		}
		c.r.Packs++
		if p.LiveBytes != ps.truthBytes || p.LiveChunks != ps.truthChunks {
			c.r.problem(false, "pack %s: live %d bytes in %d chunks, recount %d in %d", name, p.LiveBytes, p.LiveChunks, ps.truthBytes, ps.truthChunks)
		}
		if db, dc := ps.storedBytes-p.LiveBytes, ps.storedChunks-p.LiveChunks; db != 0 || dc != 0 {
			if err := c.fix(fix{kind: fixPack, key: key, a: db, b: dc}); err != nil {
				return err
			}
		}
		for _, s := range []*Stats{&c.truth, &c.stored} {
			s.Packs++
			s.PackBytes += p.TotalBytes
		}
		return nil
	})
}

// queue joins the conversion queue (q/) with its schedule (w/): each entry
// has exactly the schedule key of its due time. Abandoned conversions
// (k/) are counted.
func (c *checker) queue() error {
	expected := c.newSorter(1, nil)
	defer expected.Close()
	err := c.each(prefixQueue, func(rest, v []byte) error {
		c.truth.PendingConversions++
		c.stored.PendingConversions++
		var q queueValue
		if err := json.Unmarshal(v, &q); err != nil {
			c.r.problem(true, "queue entry %s does not decode: %v", rest, err)
			return nil
		}
		return expected.Add(scheduleKey(q.due(), digest.Digest(rest))[len(prefixSchedule):], nil)
	})
	if err != nil {
		return err
	}
	streams, err := open(c.output(expected), c.keys(prefixSchedule))
	if err != nil {
		return err
	}
	const entry, schedule = 0, 1
	err = c.join(streams, func(key []byte, on []bool) error {
		switch {
		case on[entry] && !on[schedule]:
			c.r.problem(false, "queue entry %s has no schedule key", key[8:])
			return c.fix(fix{kind: fixSchedule, key: key})
		case !on[entry]:
			c.r.problem(false, "schedule key of no queue entry: %q", key)
			return c.fix(fix{kind: fixUnschedule, key: key})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.each(prefixFailed, func(_, _ []byte) error {
		c.truth.FailedConversions++
		c.stored.FailedConversions++
		return nil
	})
}

// encodingCounts joins the split layers per encoder class counted with
// the blobs with the stored counts (e/).
func (c *checker) encodingCounts() error {
	classes := make([]string, 0, len(c.encodings))
	for class := range c.encodings {
		classes = append(classes, class)
	}
	slices.Sort(classes)
	streams, err := open(c.keys(prefixEncoding), func() (stream, error) { return &listStream{list: classes}, nil })
	if err != nil {
		return err
	}
	const stored = 0
	return c.join(streams, func(key []byte, on []bool) error {
		want := c.encodings[string(key)]
		switch v := streams[stored].value(); {
		case !on[stored]:
			c.r.problem(false, "encoding count %q missing (%d layers)", key, want)
			return c.fix(fix{kind: fixEncoding, key: key, a: want})
		case len(v) != 8:
			c.r.problem(false, "encoding count %q does not decode (%d layers)", key, want)
			return c.fix(fix{kind: fixEncoding, key: key, a: want, b: 1})
		case int64(binary.BigEndian.Uint64(v)) != want:
			have := int64(binary.BigEndian.Uint64(v))
			c.r.problem(false, "encoding count %q: %d, layers %d", key, have, want)
			return c.fix(fix{kind: fixEncoding, key: key, a: want - have})
		}
		return nil
	})
}

// listStream walks a sorted list of keys.
type listStream struct {
	list []string
	i    int
}

func (s *listStream) valid() bool   { return s.i < len(s.list) }
func (s *listStream) key() []byte   { return []byte(s.list[s.i]) }
func (s *listStream) value() []byte { return nil }
func (s *listStream) next()         { s.i++ }
func (s *listStream) close() error  { return nil }

// counters compares the index-wide counters at the snapshot with the
// recount.
func (c *checker) counters() error {
	var snap Stats
	v, err := getFrom(c.snap, []byte(keyStats))
	if err == nil {
		err = json.Unmarshal(v, &snap)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.r.problem(false, "index counters do not decode: %v", err)
	}
	if c.truth != snap {
		var diffs []string
		have, want := statFields(&snap), statFields(&c.truth)
		for i := range have {
			if *have[i].v != *want[i].v {
				diffs = append(diffs, fmt.Sprintf("%s %d (recount %d)", have[i].name, *have[i].v, *want[i].v))
			}
		}
		c.r.problem(false, "index counters disagree with the recount: %s", strings.Join(diffs, ", "))
	}
	if c.stored == snap {
		return nil
	}
	var delta Stats
	d, s, from := statFields(&delta), statFields(&c.stored), statFields(&snap)
	for i := range d {
		*d[i].v = *s[i].v - *from[i].v
	}
	b, err := json.Marshal(delta)
	if err != nil {
		return err
	}
	return c.fix(fix{kind: fixStats, key: b})
}

type statField struct {
	name string
	v    *int64
}

// statFields lists s's counters by their JSON names.
func statFields(s *Stats) []statField {
	return []statField{
		{"repos", &s.Repos}, {"blobs", &s.Blobs}, {"logical_bytes", &s.LogicalBytes},
		{"linked_bytes", &s.LinkedBytes}, {"chunks", &s.Chunks}, {"shared_chunks", &s.SharedChunks},
		{"chunk_raw_bytes", &s.ChunkRawBytes}, {"live_stored_bytes", &s.LiveStoredBytes},
		{"packs", &s.Packs}, {"pack_bytes", &s.PackBytes},
		{"pending_conversions", &s.PendingConversions}, {"pending_bytes", &s.PendingBytes},
		{"converted_blobs", &s.ConvertedBlobs}, {"failed_conversions", &s.FailedConversions},
	}
}
