package gnu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Checkpoint is the encoder's state at a block boundary, small enough to
// keep next to a recipe: with it and the input bytes just before the
// boundary (see HistoryStart), Resume encodes on from the boundary and
// produces exactly the original bits. The window itself is not kept.
type Checkpoint struct {
	Level int
	// In is the input offset of the boundary: the next block's first byte.
	In int64
	// Out is the bit offset in the raw deflate output where the next
	// block starts.
	Out uint64
	// Window is the boundary's index in gzip's 64 KiB window (0..65535):
	// the phase of the input relative to the window slides, which decides
	// when later slides happen, hence whether a later block's bytes are
	// still in the window for a stored block.
	Window int
	// DataEnd is the window index of the end of the input read into the
	// window at the boundary (the encoder's lookahead ends there).
	DataEnd int
	// MatchAvail is gzip's match_available: the byte at the boundary has
	// been looked at and waits for the lazy decision (levels 4..9).
	MatchAvail bool
	// MatchLength and MatchDist are the match found for the byte at the
	// boundary when MatchAvail (length < 3: none); MatchDist is its
	// distance back from the boundary.
	MatchLength int
	MatchDist   int
	// Skips lists, for levels 1..3, the runs of strings that gzip did not
	// insert into its hash chains (the inside of long matches) in the
	// history before the boundary.
	Skips []Skip
}

// Skip is a run of N input positions starting at input offset At whose
// strings are not in the hash chains.
type Skip struct {
	At int64
	N  int
}

// HistoryStart is the input offset from which Resume needs the input
// before the boundary: the whole window, from its index 0 (at most 64 KiB
// back). Matches reach only 32506 bytes back, but gzip, unlike zlib, lets
// the bytes after the end of the input decide between equally long
// matches at the very end, and those bytes are what the window held
// before: the previous 32 KiB of input, one window half earlier.
func (c *Checkpoint) HistoryStart() int64 {
	return c.In - int64(c.Window)
}

// recorder collects checkpoints during one encode.
type recorder struct {
	every int64
	last  int64 // input offset of the last checkpoint (0: the start)
	skips []Skip
	cps   []Checkpoint
}

func newRecorder(every int64) *recorder {
	return &recorder{every: every}
}

// skip notes that the n strings from input offset at were not inserted.
func (r *recorder) skip(at int64, n int) {
	if n <= 0 {
		return
	}
	r.skips = append(r.skips, Skip{At: at, N: n})
	if len(r.skips) >= 1<<14 {
		r.prune(at - windowSize)
	}
}

// prune drops the skips that end before from.
func (r *recorder) prune(from int64) {
	i := 0
	for i < len(r.skips) && r.skips[i].At+int64(r.skips[i].N) <= from {
		i++
	}
	if i > 0 {
		r.skips = append(r.skips[:0], r.skips[i:]...)
	}
}

// blockEnd is called after each block cut inside the compression loop,
// at input offset at.
func (r *recorder) blockEnd(s *state, at int64) {
	if at-r.last < r.every || s.eofile || s.lookahead < minMatch {
		return
	}
	cp := Checkpoint{
		Level:      s.level,
		In:         at,
		Out:        s.bw.Bits(),
		Window:     s.blockStart,
		DataEnd:    s.strstart + s.lookahead,
		MatchAvail: s.matchAvail,
	}
	cp.MatchLength = s.matchLength
	if s.matchAvail && s.matchLength >= minMatch {
		// The pending byte is at the boundary (the literal branch cuts the
		// block before it advances strstart past it).
		cp.MatchDist = s.blockStart - s.matchStart
	}
	from := max(cp.HistoryStart(), at-wsize)
	r.prune(from)
	for _, k := range r.skips {
		if k.At < at {
			cp.Skips = append(cp.Skips, k)
		}
	}
	r.cps = append(r.cps, cp)
	r.last = at
}

// priming is a resumed writer reading the window bytes after its boundary
// (up to the checkpoint's DataEnd) before it can go on.
type priming struct {
	cp   Checkpoint
	pos  int // window index of the next byte
	need int
}

func (p *priming) take(s *state, in []byte) []byte {
	n := copy(s.window[p.pos:p.pos+p.need], in)
	p.pos += n
	p.need -= n
	if p.need == 0 {
		p.complete(s)
	}
	return in[n:]
}

func (p *priming) finish() error {
	if p.need > 0 {
		return fmt.Errorf("%w: input ends %d bytes before the checkpoint's lookahead", ErrMismatch, p.need)
	}
	return nil
}

// complete rebuilds the state at the boundary once the window holds it.
func (p *priming) complete(s *state) {
	cp := &p.cp
	s.lookahead = cp.DataEnd - s.strstart
	from := int(max(cp.HistoryStart(), cp.In-wsize) - s.base)
	w := s.window
	skips := cp.Skips
	for str := from; str < s.strstart; str++ {
		abs := s.base + int64(str)
		for len(skips) > 0 && skips[0].At+int64(skips[0].N) <= abs {
			skips = skips[1:]
		}
		if len(skips) > 0 && skips[0].At <= abs {
			continue
		}
		h := (uint32(w[str])<<(2*hShift) ^ uint32(w[str+1])<<hShift ^ uint32(w[str+2])) & hashMask
		s.prev[str&wmask] = s.head[h]
		s.head[h] = uint16(str)
	}
	s.insH = (uint32(w[s.strstart])<<hShift ^ uint32(w[s.strstart+1])) & hashMask
	// What lies after the data: zeros before the first slide, else the
	// bytes one half window earlier (the slides copy the whole upper half
	// down and reads fill from the data's end).
	for p := cp.DataEnd; p < windowSize; p++ {
		if s.base > 0 && p >= wsize {
			w[p] = w[p-wsize]
		} else {
			w[p] = 0
		}
	}
}

// Resume returns a Writer that continues the encode recorded in cp: the
// caller writes the input from cp.In on, and the writer writes the raw
// deflate output from bit cp.Out on. history must be the input from
// cp.HistoryStart() to cp.In. The first byte written carries the stream's
// bits from cp.Out rounded down to a byte, with the cp.Out%8 bits that
// belong to the previous segment set to zero: OR it into that segment's
// last byte (see Splicer).
//
// If stop is not nil (a later checkpoint of the same encode), the writer
// ends at stop's boundary: input after it is ignored, and after Close the
// last partial byte is in Tail. Otherwise Close finishes the stream.
// Writing input that differs from the original makes Close fail with
// ErrMismatch when the difference moves a block boundary; it is the
// digest check downstream that proves the bytes.
func Resume(w io.Writer, cp *Checkpoint, history []byte, stop *Checkpoint) (*Writer, error) {
	if cp.Level < 1 || cp.Level > 9 {
		return nil, fmt.Errorf("%w: %d", ErrLevel, cp.Level)
	}
	if int64(len(history)) != cp.In-cp.HistoryStart() {
		return nil, fmt.Errorf("gnu: resume needs %d bytes of history, got %d", cp.In-cp.HistoryStart(), len(history))
	}
	if cp.Window < 0 || cp.Window >= windowSize || cp.DataEnd <= cp.Window || cp.DataEnd > windowSize {
		return nil, fmt.Errorf("gnu: invalid checkpoint window %d..%d", cp.Window, cp.DataEnd)
	}
	s := newState(cp.Level)
	s.base = cp.In - int64(cp.Window)
	copy(s.window[int(cp.HistoryStart()-s.base):cp.Window], history)
	s.blockStart = cp.Window
	s.strstart = cp.Window
	if cp.MatchAvail {
		s.strstart++
	}
	s.matchAvail = cp.MatchAvail
	s.matchLength = cp.MatchLength
	s.matchStart = cp.Window - cp.MatchDist
	s.prevLength = minMatch - 1
	s.started = true
	s.bw.Reset(cp.Out)
	if stop != nil {
		if stop.In <= cp.In || stop.Level != cp.Level {
			return nil, fmt.Errorf("gnu: stop checkpoint at %d does not follow %d", stop.In, cp.In)
		}
		s.stop = stop.In
	}
	z := &Writer{s: s, w: w}
	z.prime = &priming{cp: *cp, pos: cp.Window, need: cp.DataEnd - cp.Window}
	return z, nil
}

// Checkpoint encoding: a version byte, then uvarints.
const (
	cpVersion = 1
	cpKind    = 'g' // GNU gzip's encoder
)

// MarshalBinary encodes the checkpoint (a few dozen bytes, plus about
// three bytes per skip at levels 1..3).
func (c Checkpoint) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 48+3*len(c.Skips))
	b = append(b, cpVersion, cpKind, byte(c.Level))
	flags := byte(0)
	if c.MatchAvail {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(c.In))
	b = binary.AppendUvarint(b, c.Out)
	b = binary.AppendUvarint(b, uint64(c.Window))
	b = binary.AppendUvarint(b, uint64(c.DataEnd-c.Window))
	b = binary.AppendUvarint(b, uint64(c.MatchLength))
	b = binary.AppendUvarint(b, uint64(c.MatchDist))
	b = binary.AppendUvarint(b, uint64(len(c.Skips)))
	prev := c.HistoryStart()
	for _, k := range c.Skips {
		// Skips are sorted and disjoint; the first may start before
		// HistoryStart.
		b = binary.AppendVarint(b, k.At-prev)
		b = binary.AppendUvarint(b, uint64(k.N))
		prev = k.At + int64(k.N)
	}
	return b, nil
}

var errCheckpoint = errors.New("gnu: malformed checkpoint")

// UnmarshalBinary decodes a checkpoint written by MarshalBinary.
func (c *Checkpoint) UnmarshalBinary(b []byte) error {
	if len(b) < 4 || b[0] != cpVersion || b[1] != cpKind {
		return fmt.Errorf("%w: unknown version or kind", errCheckpoint)
	}
	*c = Checkpoint{Level: int(b[2]), MatchAvail: b[3]&1 != 0}
	b = b[4:]
	var vals [7]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errCheckpoint
		}
		vals[i] = v
		b = b[n:]
	}
	if vals[0] > math.MaxInt64 || vals[2] >= windowSize || vals[3] > windowSize || vals[4] > maxMatch || vals[5] > wsize || vals[6] > math.MaxInt32 {
		return errCheckpoint
	}
	c.In, c.Out = int64(vals[0]), vals[1]
	c.Window = int(vals[2])
	c.DataEnd = c.Window + int(vals[3])
	c.MatchLength, c.MatchDist = int(vals[4]), int(vals[5])
	prev := c.HistoryStart()
	for i := uint64(0); i < vals[6]; i++ {
		d, n := binary.Varint(b)
		if n <= 0 {
			return errCheckpoint
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxMatch {
			return errCheckpoint
		}
		b = b[n:]
		k := Skip{At: prev + d, N: int(l)}
		c.Skips = append(c.Skips, k)
		prev = k.At + int64(k.N)
	}
	if len(b) != 0 || c.Level < 1 || c.Level > 9 {
		return errCheckpoint
	}
	return nil
}
