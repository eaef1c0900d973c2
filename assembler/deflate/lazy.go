package deflate

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/slide"
)

// Levels 2..9: hash chains over a 64 KiB window that slides by 32 KiB.
const (
	winSize      = 1 << 15
	winMask      = winSize - 1
	hashBits     = 17
	hashSize     = 1 << hashBits
	minMatch     = 4   // the shortest match this encoder emits
	maxMatch     = 258 // the longest match deflate allows
	minLookahead = minMatch + maxMatch
	// A fill slides the window when the position has reached slideIndex.
	slideIndex = 2*winSize - minLookahead
	// Without a flush, processing stops at the first position at or past
	// canonIndex (the lookahead of a full window is too short there), so
	// that is where a window fed in full slides.
	canonIndex     = slideIndex + 1
	maxBlockTokens = 1 << 14
	// A block written by stepping its lazy state into a stored block has
	// lost its bytes when the window slid past its start.
	lostBlock = math.MaxInt32
)

type lazyParams struct {
	lazy, nice, chain int
	// fastSkip > 0 (levels 2, 3): no lazy evaluation, and the positions
	// inside a match longer than fastSkip are not hashed.
	fastSkip int
}

// The parameters of compress/flate's levels 2..9. Its "good" parameter
// never takes effect there (the search always starts from length 3), so
// it has no counterpart here.
var lazyLevels = [10]lazyParams{
	2: {0, 16, 8, 5},
	3: {0, 32, 32, 6},
	4: {4, 16, 16, 0},
	5: {16, 32, 32, 0},
	6: {16, 128, 128, 0},
	7: {32, 128, 256, 0},
	8: {128, 258, 1024, 0},
	9: {258, 258, 4096, 0},
}

// lazyEngine is compress/flate's hash-chain compressor, restated.
//
// The window holds input [base, base+end); index is the next position to
// encode. head[h] is the most recent hashed position with hash h and
// prev[i&winMask] the one before i with the same hash, both stored as
// window index + 1 (0: none) in 16 bits, and moved down with the window
// at each slide (compress/flate stores 32-bit positions plus an offset
// instead; the chains are the same, and the tables take 320 KiB instead
// of 640, which matters when the encoder shares a core's caches). A chain
// entry is usable while it is within 32 KiB of the position and not
// before the window: the slide phase decides which old positions are
// still candidates, which is why checkpoints carry it.
type lazyEngine struct {
	c *coder
	p lazyParams

	tables     *lazyTables // window, head, prev and the tokens' array
	window     *[2 * winSize]byte
	base       int64 // input offset of window[0]
	index      int
	end        int
	blockStart int // window index where the current block's bytes start, or lostBlock

	byteAvailable bool // lazy: window[index-1] awaits its literal or match
	length        int  // lazy: the match found at index-1
	offset        int

	head *[hashSize]uint16
	prev *[winSize]uint16

	tokens []token

	// crossed is the first position at or past canonIndex that the
	// encoding loop reached since the last slide (-1: none yet); a slide
	// anywhere else is logged as an event when recording.
	crossed int
	// stopIndex is where encoding without sync must stop (resuming, for a
	// slide the original made earlier than a full window would).
	stopIndex int

	// skipped lists input ranges [start,end) of positions never hashed:
	// inside long matches at levels 2 and 3, and the last three positions
	// before a flush. Kept while recording, for checkpoints.
	skipped []run
}

func newLazyEngine(c *coder, level int) *lazyEngine {
	return newLazyEngineWith(c, level, &lazyTables{tokens: make([]token, 0, maxBlockTokens+1)})
}

// newLazyEngineWith is newLazyEngine on tables t, which must be zero (but
// for the tokens' capacity).
func newLazyEngineWith(c *coder, level int, t *lazyTables) *lazyEngine {
	return &lazyEngine{
		c:         c,
		p:         lazyLevels[level],
		tables:    t,
		window:    &t.window,
		head:      &t.head,
		prev:      &t.prev,
		tokens:    t.tokens[:0],
		length:    minMatch - 1,
		crossed:   -1,
		stopIndex: math.MaxInt,
	}
}

// lazyTables are a level 2..9 encoder's arrays (about 450 KiB). Segment
// encodes take them from a pool: a cold pull encodes a segment every few
// MiB, and fresh tables each time are garbage and page faults.
type lazyTables struct {
	window [2 * winSize]byte
	head   [hashSize]uint16
	prev   [winSize]uint16
	tokens []token
}

var lazyPool sync.Pool

// getLazyTables returns zeroed tables, reused when the pool has some.
func getLazyTables() *lazyTables {
	t, _ := lazyPool.Get().(*lazyTables)
	if t == nil {
		return &lazyTables{tokens: make([]token, 0, maxBlockTokens+1)}
	}
	clear(t.window[:])
	clear(t.head[:])
	clear(t.prev[:])
	return t
}

// release gives the engine's tables back to the pool; the engine must
// not be used afterwards.
func (e *lazyEngine) release() {
	t := e.tables
	e.tables, e.window, e.head, e.prev = nil, nil, nil, nil
	t.tokens = e.tokens[:0]
	lazyPool.Put(t)
}

func hash4(b []byte) uint32 {
	return (binary.BigEndian.Uint32(b) * 0x1e35a7bd) >> (32 - hashBits)
}

// insert hashes position i and returns the previous head of its chain.
func (e *lazyEngine) insert(i int) int {
	h := hash4(e.window[i:])
	old := e.head[h]
	e.prev[i&winMask] = old
	e.head[h] = uint16(i + 1)
	return int(old)
}

func (e *lazyEngine) fill(p []byte) int {
	if e.index >= slideIndex {
		e.slide()
	}
	n := copy(e.window[e.end:], p)
	e.end += n
	return n
}

// slide moves the upper half of the window down.
func (e *lazyEngine) slide() {
	if r := e.c.rec; r != nil && e.index != e.crossed {
		r.cur.ev.slides = append(r.cur.ev.slides, e.base+int64(e.index)-r.cur.In)
	}
	copy(e.window[:], e.window[winSize:])
	e.index -= winSize
	e.end -= winSize
	if e.blockStart >= winSize && e.blockStart != lostBlock {
		e.blockStart -= winSize
	} else {
		e.blockStart = lostBlock
	}
	e.base += winSize
	e.crossed = -1
	// An entry v > winSize stays in the window as v-winSize; the others
	// (v <= winSize) leave it and become 0.
	slide.Down(e.head[:])
	slide.Down(e.prev[:])
}

// slide.Down moves entries by slide.Half: it must be half the window
// (this fails to compile otherwise).
var _ = [1]struct{}{}[winSize-slide.Half]

func (e *lazyEngine) step(sync bool) {
	if e.end-e.index < minLookahead && !sync {
		return
	}
	if e.p.fastSkip > 0 {
		e.encodeGreedy(sync)
	} else {
		e.encodeLazy(sync)
	}
	if sync && e.c.recording() {
		// The last positions had no four bytes to hash.
		e.skip(e.base+int64(max(e.end-(minMatch-1), 0)), e.base+int64(e.end))
	}
}

// skip records positions [from,to) as never hashed.
func (e *lazyEngine) skip(from, to int64) {
	if from >= to {
		return
	}
	if n := len(e.skipped); n > 0 && e.skipped[n-1].end >= from {
		e.skipped[n-1].end = max(e.skipped[n-1].end, to)
		return
	}
	if len(e.skipped) == cap(e.skipped) {
		if e.skipped == nil {
			// At most one range per 7 positions in the 32 KiB a
			// checkpoint needs: 4682.
			e.skipped = make([]run, 0, 8192)
		}
		// Forget ranges that no checkpoint can need any more.
		keep := e.base + int64(e.index) - winSize
		i := 0
		for i < len(e.skipped) && e.skipped[i].end <= keep {
			i++
		}
		e.skipped = append(e.skipped[:0], e.skipped[i:]...)
	}
	e.skipped = append(e.skipped, run{from, to})
}

// limit is the last index the loop may encode without looking at the
// stop conditions.
func (e *lazyEngine) limit(sync bool) int {
	l := e.end - minLookahead
	if !sync {
		l = min(l, e.stopIndex-1)
	}
	return l
}

// atLimit handles the loop passing limit: it reports whether to return,
// after ending the input when sync and nothing is left.
func (e *lazyEngine) atLimit(sync bool) bool {
	if e.index >= canonIndex && e.crossed < 0 {
		e.crossed = e.index
	}
	if !sync {
		return true
	}
	if e.index < e.end {
		return false
	}
	if e.byteAvailable {
		e.tokens = append(e.tokens, literalToken(e.window[e.index-1]))
		e.byteAvailable = false
	}
	if len(e.tokens) > 0 {
		e.writeBlock(e.index, true)
	}
	return true
}

func (e *lazyEngine) encodeLazy(sync bool) {
	win := e.window
	maxInsert := e.end - (minMatch - 1)
	limit := e.limit(sync)
	for {
		if e.index > limit && e.atLimit(sync) {
			return
		}
		lookahead := e.end - e.index
		chain := 0
		if e.index < maxInsert {
			chain = e.insert(e.index)
		}
		prevLength, prevOffset := e.length, e.offset
		e.length, e.offset = minMatch-1, 0
		minIndex := max(e.index-winSize, 0)
		if chain-1 >= minIndex && lookahead > prevLength && prevLength < e.p.lazy {
			if l, o, ok := e.findMatch(e.index, chain-1, lookahead); ok {
				e.length, e.offset = l, o
			}
		}
		if prevLength >= minMatch && e.length <= prevLength {
			// The match at index-1 is at least as good: take it.
			e.tokens = append(e.tokens, matchToken(prevLength, prevOffset))
			next := e.index + prevLength - 1
			for i := e.index + 1; i < next; i++ {
				if i < maxInsert {
					e.insert(i)
				}
			}
			e.index = next
			e.byteAvailable = false
			e.length = minMatch - 1
			if len(e.tokens) == maxBlockTokens {
				if e.writeBlock(e.index, sync) {
					return
				}
			}
			continue
		}
		if e.byteAvailable {
			e.tokens = append(e.tokens, literalToken(win[e.index-1]))
			if len(e.tokens) == maxBlockTokens {
				if e.writeBlock(e.index, sync) {
					return
				}
			}
		}
		e.index++
		e.byteAvailable = true
	}
}

func (e *lazyEngine) encodeGreedy(sync bool) {
	win := e.window
	maxInsert := e.end - (minMatch - 1)
	limit := e.limit(sync)
	for {
		if e.index > limit && e.atLimit(sync) {
			return
		}
		lookahead := e.end - e.index
		chain := 0
		if e.index < maxInsert {
			chain = e.insert(e.index)
		}
		e.length, e.offset = minMatch-1, 0
		minIndex := max(e.index-winSize, 0)
		if chain-1 >= minIndex && lookahead > minMatch-1 {
			if l, o, ok := e.findMatch(e.index, chain-1, lookahead); ok {
				e.length, e.offset = l, o
			}
		}
		if e.length >= minMatch {
			e.tokens = append(e.tokens, matchToken(e.length, e.offset))
			next := e.index + e.length
			if e.length <= e.p.fastSkip {
				for i := e.index + 1; i < next; i++ {
					if i < maxInsert {
						e.insert(i)
					}
				}
			} else if e.c.recording() {
				e.skip(e.base+int64(e.index+1), e.base+int64(next))
			}
			e.index = next
			if len(e.tokens) == maxBlockTokens {
				if e.writeBlock(e.index, sync) {
					return
				}
			}
			continue
		}
		e.tokens = append(e.tokens, literalToken(win[e.index]))
		if len(e.tokens) == maxBlockTokens {
			if e.writeBlock(e.index+1, sync) {
				e.index++
				return
			}
		}
		e.index++
	}
}

// findMatch searches the chain from head for the longest match at pos
// longer than 3 (a match of exactly 4 only within 4096 bytes), looking at
// no more than chain candidates and stopping at nice.
func (e *lazyEngine) findMatch(pos, head, lookahead int) (length, offset int, ok bool) {
	maxLen := min(maxMatch, lookahead)
	win := e.window[:pos+maxLen]
	nice := min(e.p.nice, maxLen)
	length = minMatch - 1
	wEnd := win[pos+length]
	wPos := win[pos:]
	minIndex := pos - winSize
	for i, tries := head, e.p.chain; tries > 0; tries-- {
		if win[i+length] == wEnd {
			n := matchLen(win[i:], wPos, maxLen)
			if n > length && (n > minMatch || pos-i <= 4096) {
				length, offset, ok = n, pos-i, true
				if n >= nice {
					break
				}
				wEnd = win[pos+n]
			}
		}
		if i == minIndex {
			// prev[i&winMask] already holds pos's own predecessor.
			break
		}
		i = int(e.prev[i&winMask]) - 1
		if i < minIndex || i < 0 {
			break
		}
	}
	return length, offset, ok
}

// matchLen returns how many leading bytes of a and b agree, up to max.
func matchLen(a, b []byte, max int) int {
	a, b = a[:max], b[:max]
	n := 0
	for ; n+8 <= max; n += 8 {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
	}
	for n < max && a[n] == b[n] {
		n++
	}
	return n
}

// writeBlock writes the pending tokens as a block ending at window index
// index and reports whether encoding must stop there (resuming).
func (e *lazyEngine) writeBlock(index int, sync bool) bool {
	if index > 0 {
		var input []byte
		if e.blockStart <= index {
			input = e.window[e.blockStart:index]
		}
		e.blockStart = index
		e.c.blk.writeTokens(e.tokens, false, input)
		e.tokens = e.tokens[:0]
		e.c.cut(e.base+int64(index), sync)
		return e.c.stopped
	}
	e.tokens = e.tokens[:0]
	return false
}

// state returns the checkpoint state at the block boundary at input
// offset at: the window phase, and the never-hashed positions among the
// history a resumed encoder must hash again.
func (e *lazyEngine) state(at int64) engineState {
	phase := at - e.base
	hist := min(phase, winSize)
	st := engineState{phase: phase, hist: hist}
	from := at - hist
	for _, r := range e.skipped {
		if r.end <= from || r.start >= at {
			continue
		}
		st.runs = append(st.runs, run{max(r.start, from) - at, min(r.end, at) - at})
	}
	return st
}
