package deflate

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Checkpoint describes one segment of a deflate stream: the input range
// [In, End) whose encoding occupies output bits [Bit, EndBit), and the
// encoder state at In that lets an encoder produce exactly those bits
// without encoding what comes before (see [EncodeSegment]). The state does
// not include the window: a resumed encoder reads the HistoryLen input
// bytes before In itself.
type Checkpoint struct {
	Level       int
	In, End     int64 // input offsets
	Bit, EndBit int64 // output bit offsets
	Final       bool  // the segment ends the stream

	st engineState
	ev events
}

// engineState is the encoder state at a block boundary.
type engineState struct {
	// phase: levels 2..9: the window index of In (In minus the input
	// offset of the window's first byte, 0..65535); level 1: the length of
	// the block before In (0..65535).
	phase int64
	// hist is the number of input bytes before In the encoder needs.
	hist int64
	// runs (levels 2..9): ranges of history positions that were never
	// hashed, as offsets relative to In (negative), ascending.
	runs []run
}

type run struct{ start, end int64 }

// events are what happened while the segment was encoded that the input
// alone does not tell, each list ascending, offsets relative to In:
type events struct {
	// flushes: input offsets at which the caller flushed.
	flushes []int64
	// slides (levels 2..9): the positions being encoded when the window
	// slid, for slides earlier or later than a full window would have
	// made them (input arriving in pieces, flushes).
	slides []int64
	// matches (level 1): every match whose source lies before In, which a
	// resumed encoder's empty table cannot find. at is the match's
	// position in level 1's virtual positions, relative to In's.
	matches []forcedMatch
}

type forcedMatch struct {
	at   int64
	dist int32
}

// HistoryLen is the number of input bytes before In that resuming at this
// checkpoint needs (at most 32 KiB).
func (c Checkpoint) HistoryLen() int64 { return c.st.hist }

// Lookahead is the most input beyond a segment's End that encoding the
// segment reads.
const Lookahead = 2 * winSize

const checkpointVersion = 1

// MarshalBinary encodes the checkpoint:
//
//	version    byte    1
//	level      byte    level+2 (0..11)
//	flags      byte    bit 0: Final
//	In         uvarint
//	End-In     uvarint
//	Bit        uvarint
//	EndBit-Bit uvarint
//	phase      uvarint
//	hist       uvarint
//	nruns      uvarint, then per run (ascending, within [In-hist, In)):
//	  gap      uvarint  start minus the previous run's end (the first: minus In-hist)
//	  length   uvarint
//	nflushes   uvarint, then per flush: uvarint delta (from the previous, or from In)
//	nslides    uvarint, then per slide: uvarint delta
//	nmatches   uvarint, then per match: uvarint delta, uvarint distance
func appendDeltas(b []byte, v []int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	at := int64(0)
	for _, x := range v {
		b = binary.AppendUvarint(b, uint64(x-at))
		at = x
	}
	return b
}

func (c Checkpoint) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	b := []byte{checkpointVersion, byte(c.Level + 2), 0}
	if c.Final {
		b[2] = 1
	}
	for _, v := range []int64{c.In, c.End - c.In, c.Bit, c.EndBit - c.Bit, c.st.phase, c.st.hist, int64(len(c.st.runs))} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	at := -c.st.hist
	for _, r := range c.st.runs {
		b = binary.AppendUvarint(b, uint64(r.start-at))
		b = binary.AppendUvarint(b, uint64(r.end-r.start))
		at = r.end
	}
	b = appendDeltas(b, c.ev.flushes)
	b = appendDeltas(b, c.ev.slides)
	b = binary.AppendUvarint(b, uint64(len(c.ev.matches)))
	at = 0
	for _, m := range c.ev.matches {
		b = binary.AppendUvarint(b, uint64(m.at-at))
		b = binary.AppendUvarint(b, uint64(m.dist))
		at = m.at
	}
	return b, nil
}

var errCorrupt = errors.New("deflate: corrupt checkpoint")

// UnmarshalBinary decodes a checkpoint written by MarshalBinary.
func (c *Checkpoint) UnmarshalBinary(b []byte) error {
	if len(b) < 3 {
		return fmt.Errorf("%w: %d bytes", errCorrupt, len(b))
	}
	if b[0] != checkpointVersion {
		return fmt.Errorf("deflate: checkpoint version %d, want %d", b[0], checkpointVersion)
	}
	if b[2]&^1 != 0 {
		return fmt.Errorf("%w: flags %#x", errCorrupt, b[2])
	}
	d := decoder{b: b[3:]}
	x := Checkpoint{Level: int(b[1]) - 2, Final: b[2]&1 != 0}
	x.In = d.int()
	x.End = x.In + d.int()
	x.Bit = d.int()
	x.EndBit = x.Bit + d.int()
	x.st.phase = d.int()
	x.st.hist = d.int()
	n := d.count(2)
	at := -x.st.hist
	for i := 0; i < n && d.err == nil; i++ {
		start := at + d.int()
		at = start + d.int()
		x.st.runs = append(x.st.runs, run{start, at})
	}
	x.ev.flushes = d.deltas()
	x.ev.slides = d.deltas()
	n = d.count(2)
	at = 0
	for i := 0; i < n && d.err == nil; i++ {
		at += d.int()
		x.ev.matches = append(x.ev.matches, forcedMatch{at, int32(min(d.int(), 1<<20))})
	}
	if d.err != nil {
		return fmt.Errorf("%w: truncated or overflowing field", errCorrupt)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	if err := x.validate(); err != nil {
		return err
	}
	*c = x
	return nil
}

// validate checks what a checkpoint from any input must satisfy.
func (c Checkpoint) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errCorrupt}, args...)...)
	}
	switch {
	case c.Level < HuffmanOnly || c.Level > BestCompression:
		return bad("level %d", c.Level)
	case c.In < 0 || c.End < c.In || c.Bit < 0 || c.EndBit < c.Bit:
		return bad("ranges [%d,%d) bits [%d,%d)", c.In, c.End, c.Bit, c.EndBit)
	case c.st.phase < 0 || c.st.phase > 2*winSize || c.st.hist < 0 || c.st.hist > winSize || c.st.hist > c.In:
		return bad("phase %d, history %d", c.st.phase, c.st.hist)
	case c.Level <= BestSpeed && len(c.st.runs) > 0:
		return bad("level %d with hash runs", c.Level)
	case c.Level != BestSpeed && c.Level > NoCompression && c.st.hist > c.st.phase:
		return bad("history %d beyond window phase %d", c.st.hist, c.st.phase)
	}
	at := -c.st.hist
	for _, r := range c.st.runs {
		if r.start < at || r.end <= r.start || r.end > 0 {
			return bad("hash run [%d,%d)", r.start, r.end)
		}
		at = r.end
	}
	limit := c.End - c.In + Lookahead
	for _, l := range [][]int64{c.ev.flushes, c.ev.slides} {
		at := int64(0)
		for _, x := range l {
			if x < at || x > limit {
				return bad("event offset %d", x)
			}
			at = x
		}
	}
	if c.Level < 2 && len(c.ev.slides) > 0 {
		return bad("slides at level %d", c.Level)
	}
	if c.Level != BestSpeed && len(c.ev.matches) > 0 {
		return bad("matches at level %d", c.Level)
	}
	at = 0
	for _, m := range c.ev.matches {
		if m.at < at || m.dist < 1 || m.dist > maxDist {
			return bad("match at %d distance %d", m.at, m.dist)
		}
		at = m.at
	}
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) deltas() []int64 {
	n := d.count(1)
	var v []int64
	at := int64(0)
	for i := 0; i < n && d.err == nil; i++ {
		at += d.int()
		v = append(v, at)
	}
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > 1<<62 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return int64(v)
}

// count reads a number of items of at least min bytes each.
func (d *decoder) count(min int) int {
	n := d.int()
	if n > int64(len(d.b)/min) {
		d.err = errCorrupt
		return 0
	}
	return int(n)
}
