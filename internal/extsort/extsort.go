// Package extsort sorts more records than fit in memory. A record is a key
// and a value, both byte strings; keys compare as bytes.Compare does.
// Records are buffered up to a memory budget, sorted, and written to
// temporary run files; the runs are then merged, a bounded number at a
// time, into one ordered stream. Records with equal keys come out one
// after the other, in no particular order, or, given a Combine function,
// merged into one record.
//
// Run files hold their records with the key's prefix shared with the
// previous key left out (sorted keys share long prefixes), and the sorter
// checks every run it reads back against the CRC-32C and record count it
// wrote. They are not synced: a crash loses a sort, never data.
package extsort

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Options configure a Sorter.
type Options struct {
	// Dir is where the sorter makes its temporary directory for run
	// files; "" means os.TempDir().
	Dir string
	// Memory bounds the bytes the sorter holds: buffered records with 16
	// bytes of bookkeeping each, or, while merging, the read buffers of
	// the runs. A single record larger than that is held alone. Default
	// DefaultMemory; at least MinMemory.
	Memory int
	// FanIn bounds how many runs are merged at once (and so how many
	// files are open); more runs are merged in several passes. Default:
	// as many as Memory allows, at most 128; at least 2.
	FanIn int
	// Combine, if set, merges the value v of a record into acc, the value
	// of a record with the same key, and returns the result (it may
	// append to acc and return it). Each key then comes out once. It must
	// be associative and commutative: records are combined in no
	// particular order.
	Combine func(acc, v []byte) []byte
	// Buffer, if set, is where the sorter buffers records: memory it
	// takes over from the sorter that had the Buffer before, and leaves
	// to the next one, so that a sequence of sorts allocates it once
	// (and leaves no garbage of it). One sorter at a time may have it:
	// from New until Close, or until Sort if the sort spilled. It stays
	// allocated while the sorter merges, so the sorter buffers records in
	// Memory less its merge's read buffers.
	Buffer *Buffer
}

// Buffer is memory for buffering records, handed from sorter to sorter
// (Options.Buffer). The zero value is an empty Buffer.
type Buffer struct {
	arena []byte
	recs  []rec
	inUse bool
}

// Memory bounds.
const (
	DefaultMemory = 16 << 20
	MinMemory     = 1 << 10
	maxFanIn      = 128
	recOverhead   = 16 // bytes of a rec
)

// Sorter sorts records added to it. It is not safe for concurrent use.
type Sorter struct {
	o       Options
	bufSize int // bytes of each run file's read or write buffer
	room    int // bytes the buffered records may take, bookkeeping included

	dir   string // temporary directory, made at the first spill
	arena []byte // buffered records' keys and values
	recs  []rec
	runs  []*run
	seq   int // run files made so far

	sorted, closed bool
	iter           *Iter
}

// rec is a buffered record: key at arena[off:off+klen], value after it.
type rec struct {
	off        int
	klen, vlen uint32
}

// New returns a Sorter.
func New(o Options) *Sorter {
	if o.Memory == 0 {
		o.Memory = DefaultMemory
	}
	o.Memory = max(o.Memory, MinMemory)
	bufSize := min(max(o.Memory/32, 512), 64<<10)
	if o.FanIn == 0 {
		o.FanIn = min(o.Memory/bufSize-1, maxFanIn)
	}
	o.FanIn = max(o.FanIn, 2)
	s := &Sorter{o: o, bufSize: bufSize, room: o.Memory}
	if b := o.Buffer; b != nil {
		if b.inUse {
			panic("extsort: Buffer in use by another sorter")
		}
		b.inUse = true
		s.room = max(o.Memory-(o.FanIn+1)*bufSize, o.Memory/2)
		if cap(b.arena)+cap(b.recs)*recOverhead <= s.room {
			s.arena, s.recs = b.arena[:0], b.recs[:0]
		}
		b.arena, b.recs = nil, nil
	}
	return s
}

// release gives the buffer back to the Buffer, or to the collector.
func (s *Sorter) release() {
	if b := s.o.Buffer; b != nil && b.inUse {
		b.inUse = false
		if cap(s.arena)+cap(s.recs)*recOverhead <= s.room {
			b.arena, b.recs = s.arena[:0], s.recs[:0]
		} else {
			b.arena, b.recs = nil, nil // grown past the budget for one large record
		}
	}
	s.arena, s.recs = nil, nil
}

func (s *Sorter) key(r rec) []byte { return s.arena[r.off : r.off+int(r.klen)] }
func (s *Sorter) value(r rec) []byte {
	v := r.off + int(r.klen)
	return s.arena[v : v+int(r.vlen)]
}

// Add adds a record; key and value are copied.
func (s *Sorter) Add(key, value []byte) error {
	if s.sorted || s.closed {
		return errors.New("extsort: Add after Sort or Close")
	}
	if len(key) > 1<<30 || len(value) > 1<<30 {
		return fmt.Errorf("extsort: record of %d+%d bytes is too large", len(key), len(value))
	}
	need := len(key) + len(value)
	arenaCap, recsCap, ok := s.plan(need)
	if !ok {
		if err := s.spill(); err != nil {
			return err
		}
		arenaCap, recsCap, _ = s.plan(need)
	}
	if arenaCap > cap(s.arena) {
		a := make([]byte, len(s.arena), arenaCap)
		copy(a, s.arena)
		s.arena = a
	}
	if recsCap > cap(s.recs) {
		r := make([]rec, len(s.recs), recsCap)
		copy(r, s.recs)
		s.recs = r
	}
	off := len(s.arena)
	s.arena = append(append(s.arena, key...), value...)
	s.recs = append(s.recs, rec{off: off, klen: uint32(len(key)), vlen: uint32(len(value))})
	return nil
}

// plan returns the capacities the buffers need for one more record of
// need bytes: a full buffer doubles, or grows by at least a quarter to
// what the budget leaves; ok=false if it cannot, and the buffer must be
// spilled first. An empty buffer always takes the record.
func (s *Sorter) plan(need int) (arenaCap, recsCap int, ok bool) {
	arenaCap, recsCap = cap(s.arena), cap(s.recs)
	empty := len(s.recs) == 0
	if len(s.recs) == recsCap {
		room := (s.room - arenaCap) / recOverhead
		recsCap = min(max(2*recsCap, min(max(s.room/256, 4), 64)), room)
		if minCap := len(s.recs) + max(len(s.recs)/4, 1); recsCap < minCap {
			if !empty {
				return 0, 0, false
			}
			recsCap = minCap
		}
	}
	if n := len(s.arena) + need; n > arenaCap {
		room := s.room - recsCap*recOverhead
		arenaCap = min(max(2*arenaCap, n, min(max(s.room/4, 64), 4096)), room)
		if arenaCap < n+len(s.arena)/4 {
			if !empty {
				return 0, 0, false
			}
			arenaCap = n
		}
	}
	return arenaCap, recsCap, true
}

// sortBuffer sorts the buffered records by key.
func (s *Sorter) sortBuffer() {
	slices.SortFunc(s.recs, func(a, b rec) int { return bytes.Compare(s.key(a), s.key(b)) })
}

// spill sorts the buffer and writes it as a run, emptying it.
func (s *Sorter) spill() error {
	s.sortBuffer()
	w, err := s.newRun()
	if err != nil {
		return err
	}
	var acc []byte
	for i := 0; i < len(s.recs); {
		r := s.recs[i]
		k, v := s.key(r), s.value(r)
		i++
		if s.o.Combine != nil {
			acc = append(acc[:0], v...)
			for ; i < len(s.recs) && bytes.Equal(s.key(s.recs[i]), k); i++ {
				acc = s.o.Combine(acc, s.value(s.recs[i]))
			}
			v = acc
		}
		if err := w.write(k, v); err != nil {
			w.abort()
			return err
		}
	}
	run, err := w.finish()
	if err != nil {
		return err
	}
	s.runs = append(s.runs, run)
	s.arena, s.recs = s.arena[:0], s.recs[:0]
	if cap(s.arena)+cap(s.recs)*recOverhead > s.room {
		s.arena, s.recs = nil, nil // grown past the budget for one large record
	}
	return nil
}

func (s *Sorter) newRun() (*runWriter, error) {
	if s.dir == "" {
		dir, err := os.MkdirTemp(s.o.Dir, "extsort-")
		if err != nil {
			return nil, fmt.Errorf("extsort: %w", err)
		}
		s.dir = dir
	}
	s.seq++
	return createRun(filepath.Join(s.dir, fmt.Sprintf("run-%06d", s.seq)), s.bufSize)
}

// Sort ends the input and returns an iterator over the records in key
// order. It merges runs in passes until at most FanIn are left; ctx
// stops it between records. The iterator is valid until Close.
func (s *Sorter) Sort(ctx context.Context) (*Iter, error) {
	if s.sorted || s.closed {
		return nil, errors.New("extsort: Sort called twice or after Close")
	}
	s.sorted = true
	if len(s.runs) == 0 {
		// Everything fits: no file at all.
		s.sortBuffer()
		s.iter = newIter([]source{&memSource{s: s, i: -1}}, s.o.Combine)
		return s.iter, nil
	}
	if len(s.recs) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	s.release() // the budget goes to the merge's buffers
	for len(s.runs) > s.o.FanIn {
		if err := s.mergePass(ctx); err != nil {
			return nil, err
		}
	}
	srcs, err := s.openRuns(s.runs)
	if err != nil {
		return nil, err
	}
	s.iter = newIter(srcs, s.o.Combine)
	return s.iter, nil
}

// mergePass merges the FanIn oldest runs into one new run.
func (s *Sorter) mergePass(ctx context.Context) error {
	in := s.runs[:s.o.FanIn]
	srcs, err := s.openRuns(in)
	if err != nil {
		return err
	}
	it := newIter(srcs, s.o.Combine)
	defer it.close()
	w, err := s.newRun()
	if err != nil {
		return err
	}
	for n := 0; it.Next(); n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			w.abort()
			return ctx.Err()
		}
		if err := w.write(it.Key(), it.Value()); err != nil {
			w.abort()
			return err
		}
	}
	if err := it.Err(); err != nil {
		w.abort()
		return err
	}
	out, err := w.finish()
	if err != nil {
		return err
	}
	it.close()
	for _, r := range in {
		if err := os.Remove(r.path); err != nil {
			return fmt.Errorf("extsort: %w", err)
		}
	}
	s.runs = append(s.runs[s.o.FanIn:], out)
	return nil
}

func (s *Sorter) openRuns(runs []*run) ([]source, error) {
	srcs := make([]source, 0, len(runs))
	for _, r := range runs {
		rr, err := openRun(r, s.bufSize)
		if err != nil {
			for _, src := range srcs {
				src.close()
			}
			return nil, err
		}
		srcs = append(srcs, rr)
	}
	return srcs, nil
}

// Runs returns how many run files the sorter has written so far, merge
// passes included: 0 if everything fit in memory.
func (s *Sorter) Runs() int { return s.seq }

// Close releases the buffers and removes the run files. It may be called
// more than once.
func (s *Sorter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.iter != nil {
		s.iter.close()
		s.iter = nil
	}
	s.release()
	s.runs = nil
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			return fmt.Errorf("extsort: %w", err)
		}
	}
	return nil
}

// memSource yields the sorted buffer.
type memSource struct {
	s *Sorter
	i int
}

func (m *memSource) next() (bool, error) {
	m.i++
	return m.i < len(m.s.recs), nil
}
func (m *memSource) key() []byte   { return m.s.key(m.s.recs[m.i]) }
func (m *memSource) value() []byte { return m.s.value(m.s.recs[m.i]) }
func (m *memSource) close()        {}
