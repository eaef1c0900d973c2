package deflate

import (
	"encoding/binary"
	"math"
)

// Level 1: compress/flate's BestSpeed, a Snappy-style single-probe matcher
// run on each 65535-byte block, with the previous block as history.
const (
	fastTableBits = 14
	fastTableSize = 1 << fastTableBits
	fastMargin    = 16 - 1 // no match search in a block's last 15 bytes
	fastMinBlock  = 1 + 1 + fastMargin
	// Positions are int32 relative to a moving origin; before they could
	// overflow they are shifted down (this changes no match decision).
	fastRebase = math.MaxInt32 - 2*maxStored
)

type fastEntry struct {
	val uint32 // the four bytes at pos
	pos int32
}

// fastEngine is compress/flate's level 1 restated. Positions in the table
// are virtual: cur is the virtual position of the current block's first
// byte, and it jumps ahead (not only by the block length) when history
// is dropped, which is what puts old entries out of reach.
type fastEngine struct {
	c *coder

	buf     []byte // the block being filled
	n       int
	blockIn int64 // input offset of buf[0]

	table   [fastTableSize]fastEntry
	prev    []byte // the previous block's last len(prev) bytes ...
	prevLen int    // ... of its prevLen bytes
	spare   []byte // recycled block buffer
	cur     int32
	// rebaseAt is the cur at which positions are shifted down.
	rebaseAt int32
	virt     int64 // virtual position of cur's origin: cur+virt never moves back

	tokens []token

	// Checkpoints: segVirt is the virtual position where the segment
	// starts. Recording logs every match whose source lies before it;
	// resuming takes those matches from forced, since its table starts
	// empty.
	segVirt int64
	forced  []forcedMatch
}

func newFastEngine(c *coder) *fastEngine {
	return &fastEngine{
		c:        c,
		buf:      make([]byte, maxStored),
		spare:    make([]byte, maxStored),
		cur:      maxStored,
		rebaseAt: fastRebase,
		segVirt:  maxStored,
		tokens:   make([]token, 0, maxStored),
	}
}

func (e *fastEngine) fill(p []byte) int {
	k := copy(e.buf[e.n:], p)
	e.n += k
	return k
}

func (e *fastEngine) step(sync bool) {
	if e.n < maxStored {
		if !sync || e.n == 0 {
			return
		}
		if e.n < 128 {
			if e.n <= 16 {
				e.c.blk.writeStored(e.buf[:e.n], false)
			} else {
				e.c.blk.writeHuffOnly(false, e.buf[:e.n])
			}
			e.blockIn += int64(e.n)
			e.n = 0
			e.dropHistory()
			e.c.cut(e.blockIn, true)
			return
		}
	}
	src := e.buf[:e.n]
	e.tokens = e.encode(e.tokens[:0], src)
	if len(e.tokens) > e.n-e.n>>4 {
		// Matches removed less than 1/16: literals only.
		e.c.blk.writeHuffOnly(false, src)
	} else {
		e.c.blk.writeTokensDynamic(e.tokens, false, src)
	}
	if len(src) >= fastMinBlock {
		// The block becomes the history.
		e.prev, e.prevLen = src, len(src)
		e.buf, e.spare = e.spare, e.buf[:cap(e.buf)]
	}
	e.blockIn += int64(e.n)
	e.n = 0
	e.c.cut(e.blockIn, sync)
}

// dropHistory forgets the previous block and puts every table entry out
// of reach.
func (e *fastEngine) dropHistory() {
	e.prev, e.prevLen = e.prev[:0], 0
	e.cur += winSize
	if e.cur >= e.rebaseAt {
		e.shift()
	}
}

// shift moves the origin so that cur becomes winSize+1; entries that end
// up below 0 were out of reach anyway.
func (e *fastEngine) shift() {
	if e.prevLen == 0 {
		e.table = [fastTableSize]fastEntry{}
	} else {
		for i := range e.table {
			e.table[i].pos = max(e.table[i].pos-e.cur+winSize+1, 0)
		}
	}
	e.virt += int64(e.cur) - (winSize + 1)
	e.cur = winSize + 1
}

func fastHash(u uint32) uint32 { return (u * 0x1e35a7bd) >> (32 - fastTableBits) }

func load32(b []byte, i int32) uint32 { return binary.LittleEndian.Uint32(b[i:]) }
func load64(b []byte, i int32) uint64 { return binary.LittleEndian.Uint64(b[i:]) }

// probe returns the table entry for the four bytes cv at block position s
// (hash h); when resuming it substitutes the match the original took from
// before the segment, which this table never saw.
func (e *fastEngine) probe(h uint32, s int32) fastEntry {
	if len(e.forced) > 0 && e.forced[0].at == e.virt+int64(e.cur)+int64(s)-e.segVirt {
		f := e.forced[0]
		e.forced = e.forced[1:]
		return fastEntry{val: load32(e.buf, s), pos: e.cur + s - f.dist}
	}
	return e.table[h]
}

// took is called for every match accepted at block position s with source
// entry cand; while recording it logs those reaching before the segment.
func (e *fastEngine) took(s int32, cand fastEntry) {
	if v := e.virt + int64(e.cur) + int64(s); v-int64(s-(cand.pos-e.cur)) < e.segVirt {
		r := e.c.rec
		r.cur.ev.matches = append(r.cur.ev.matches, forcedMatch{v - e.segVirt, s - (cand.pos - e.cur)})
	}
}

func (e *fastEngine) encode(dst []token, src []byte) []token {
	if e.cur >= e.rebaseAt {
		e.shift()
	}
	if len(src) < fastMinBlock {
		e.cur += maxStored
		e.prev, e.prevLen = e.prev[:0], 0
		for _, b := range src {
			dst = append(dst, literalToken(b))
		}
		return dst
	}
	rec := e.c.recording()
	sLimit := int32(len(src) - fastMargin)
	nextEmit := int32(0)
	s := int32(0)
	cv := load32(src, s)
	nextHash := fastHash(cv)
	for {
		// Look at every byte for 32 bytes, then every second, and so on.
		skip := int32(32)
		nextS := s
		var cand fastEntry
		for {
			s = nextS
			stepBy := skip >> 5
			nextS = s + stepBy
			skip += stepBy
			if nextS > sLimit {
				goto tail
			}
			cand = e.probe(nextHash&(fastTableSize-1), s)
			now := load32(src, nextS)
			e.table[nextHash&(fastTableSize-1)] = fastEntry{val: cv, pos: s + e.cur}
			nextHash = fastHash(now)
			if s-(cand.pos-e.cur) > maxDist || cv != cand.val {
				cv = now
				continue
			}
			break
		}
		if rec {
			e.took(s, cand)
		}
		for _, b := range src[nextEmit:s] {
			dst = append(dst, literalToken(b))
		}
		for {
			// A four-byte match at s: extend it.
			s += 4
			t := cand.pos - e.cur + 4
			l := e.matchLen(s, t, src)
			dst = append(dst, matchToken(int(l+4), int(s-t)))
			s += l
			nextEmit = s
			if s >= sLimit {
				goto tail
			}
			// Hash s-1 and s; if s matches right away, go on matching.
			x := load64(src, s-1)
			e.table[fastHash(uint32(x))&(fastTableSize-1)] = fastEntry{val: uint32(x), pos: e.cur + s - 1}
			x >>= 8
			h := fastHash(uint32(x)) & (fastTableSize - 1)
			cand = e.probe(h, s)
			e.table[h] = fastEntry{val: uint32(x), pos: e.cur + s}
			if s-(cand.pos-e.cur) > maxDist || uint32(x) != cand.val {
				cv = uint32(x >> 8)
				nextHash = fastHash(cv)
				s++
				break
			}
			if rec {
				e.took(s, cand)
			}
		}
	}
tail:
	for _, b := range src[nextEmit:] {
		dst = append(dst, literalToken(b))
	}
	e.cur += int32(len(src))
	return dst
}

const maxDist = 1 << 15

// matchLen extends a match of src[s:] with the bytes at block position t
// (negative: in the previous block), up to 254 more bytes and the block's
// end. A source before the previous block's start extends no further.
func (e *fastEngine) matchLen(s, t int32, src []byte) int32 {
	s1 := min(int(s)+maxMatch-4, len(src))
	a := src[s:s1]
	if t >= 0 {
		return int32(matchLen(a, src[t:], len(a)))
	}
	tp := int32(e.prevLen) + t
	if tp < 0 {
		return 0
	}
	i := int(tp) - (e.prevLen - len(e.prev))
	if i < 0 {
		// The history given to a resumed encoder was too short.
		e.c.mismatch = true
		return 0
	}
	b := e.prev[i:]
	k := min(len(a), len(b))
	n := int32(matchLen(a, b, k))
	if int(n) < k || int(s+n) == s1 {
		return n
	}
	a = src[int(s+n):s1]
	return n + int32(matchLen(a, src, len(a)))
}

// state returns the checkpoint state at the block boundary at input
// offset at: the previous block's length.
func (e *fastEngine) state(at int64) engineState {
	e.segVirt = e.virt + int64(e.cur)
	return engineState{phase: int64(e.prevLen), hist: int64(min(e.prevLen, winSize))}
}
