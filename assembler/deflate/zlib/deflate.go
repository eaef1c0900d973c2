package zlib

import (
	"encoding/binary"
	"math/bits"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/slide"
	"github.com/chunkyard/chunkyard/assembler/deflate/internal/zhuff"
)

// Parameters fixed by windowBits 15 and memLevel 8.
const (
	wsize        = 1 << 15
	wmask        = wsize - 1
	windowSize   = 2 * wsize
	hashBits     = 8 + 7
	hashSize     = 1 << hashBits
	hashMask     = hashSize - 1
	hashShift    = (hashBits + minMatch - 1) / minMatch
	minMatch     = zhuff.MinMatch
	maxMatch     = zhuff.MaxMatch
	minLookahead = maxMatch + minMatch + 1
	maxDist      = wsize - minLookahead
	litBufSize   = 1 << (8 + 6)
	symEnd       = litBufSize - 1 // a block is cut when it holds this many symbols
	tooFar       = 4096

	// windowSlack follows the window so that the 8-byte compares of
	// longestMatch may read past index windowSize-1; the bytes there are
	// never part of a result.
	windowSlack = 16
)

// config is one row of zlib's configuration_table.
type config struct {
	good, lazy, nice, chain int
	fast                    bool // deflate_fast (levels 1..3) rather than deflate_slow
}

var configs = [10]config{
	{},
	{4, 4, 8, 4, true},
	{4, 5, 16, 8, true},
	{4, 6, 32, 32, true},
	{4, 4, 16, 16, false},
	{8, 16, 32, 32, false},
	{8, 16, 128, 128, false},
	{8, 32, 128, 256, false},
	{32, 128, 258, 1024, false},
	{32, 258, 258, 4096, false},
}

// Flush modes, with zlib's numbering (it ranks them for the rule that
// drops a repeated flush).
const (
	noFlush      = 0
	partialFlush = 1
	syncFlush    = 2
	fullFlush    = 3
	finishFlush  = 4
	blockFlush   = 5
)

func rank(f int) int {
	r := f * 2
	if f > 4 {
		r -= 9
	}
	return r
}

type blockState int

const (
	needMore blockState = iota
	blockDone
	finishDone
	stopped // a resumed segment reached its end checkpoint
)

// state is one raw deflate stream, field for field the part of zlib's
// deflate_state that decides the output. Window indexes are ints; base is
// the input offset of window[0].
type state struct {
	level int
	cfg   config

	window []byte
	prev   []uint16
	head   []uint16
	insH   uint32

	strstart    int
	blockStart  int
	lookahead   int
	insert      int
	matchStart  int
	matchLength int
	prevLength  int
	prevMatch   int
	matchAvail  bool

	lastFlush int
	finished  bool

	// input not yet read into the window: in[inPos:]
	in    []byte
	inPos int
	// closing is set while finishing: the input is complete.
	closing bool

	base int64 // input offset of window[0]

	blk *zhuff.Block
	bw  zhuff.BitWriter

	rec  *recorder // checkpoint recording, or nil
	stop int64     // input offset at which a resumed segment stops, or -1
}

func newState(level int) *state {
	s := &state{
		window: make([]byte, windowSize+windowSlack),
		prev:   make([]uint16, wsize),
		head:   make([]uint16, hashSize),
		blk:    zhuff.NewBlock(litBufSize),
		in:     make([]byte, 0, 2*windowSize),
		stop:   -1,
	}
	s.reset(level)
	return s
}

// reset is deflateReset followed by deflateParams(level): a new stream on
// the same buffers. Like zlib it leaves the window bytes as they were.
func (s *state) reset(level int) {
	s.level = level
	s.cfg = configs[level]
	clear(s.head)
	s.strstart, s.blockStart, s.lookahead, s.insert = 0, 0, 0, 0
	s.matchLength, s.prevLength = minMatch-1, minMatch-1
	s.matchStart, s.prevMatch = 0, 0
	s.matchAvail = false
	s.insH = 0
	s.lastFlush = -2
	s.finished = false
	s.in, s.inPos, s.closing = s.in[:0], 0, false
	s.base = 0
	s.blk.Reset()
	s.bw.Reset(0)
}

func (s *state) avail() int { return len(s.in) - s.inPos }

func (s *state) slideHash() {
	slide.Down(s.head)
	slide.Down(s.prev)
}

// slide.Down moves entries by slide.Half: it must be half the window
// (this fails to compile otherwise).
var _ = [1]struct{}{}[wsize-slide.Half]

// canFill reports whether fillWindow may run now without changing the
// output: either the input is complete or being flushed, or there is at
// least as much buffered input as the window has room for, so the read
// fills the window as it would with the whole input at hand.
func (s *state) canFill(flush int) bool {
	if flush != noFlush {
		return true
	}
	more := windowSize - s.lookahead - s.strstart
	if s.strstart >= wsize+maxDist {
		more += wsize
	}
	return s.avail() >= more
}

// fillWindow is zlib's fill_window: slide the window when strstart is deep
// in its upper half, read as much input as fits, and insert the strings
// left pending by a flush or a dictionary.
func (s *state) fillWindow() {
	for {
		more := windowSize - s.lookahead - s.strstart
		if s.strstart >= wsize+maxDist {
			copy(s.window[:wsize-more], s.window[wsize:windowSize-more])
			s.matchStart -= wsize
			s.strstart -= wsize
			s.blockStart -= wsize
			if s.insert > s.strstart {
				s.insert = s.strstart
			}
			s.base += wsize
			s.slideHash()
			more += wsize
		}
		if s.avail() == 0 {
			break
		}
		n := copy(s.window[s.strstart+s.lookahead:s.strstart+s.lookahead+more], s.in[s.inPos:])
		s.inPos += n
		s.lookahead += n

		if s.lookahead+s.insert >= minMatch {
			str := s.strstart - s.insert
			s.insH = uint32(s.window[str])
			s.insH = (s.insH<<hashShift ^ uint32(s.window[str+1])) & hashMask
			for s.insert > 0 {
				s.insH = (s.insH<<hashShift ^ uint32(s.window[str+minMatch-1])) & hashMask
				s.prev[str&wmask] = s.head[s.insH]
				s.head[s.insH] = uint16(str)
				str++
				s.insert--
				if s.lookahead+s.insert < minMatch {
					break
				}
			}
		}
		if s.lookahead >= minLookahead || s.avail() == 0 {
			break
		}
	}
}

// insertString inserts the string at str into the hash chains and returns
// the previous head of its chain.
func (s *state) insertString(str int) int {
	s.insH = (s.insH<<hashShift ^ uint32(s.window[str+minMatch-1])) & hashMask
	h := s.head[s.insH]
	s.prev[str&wmask] = h
	s.head[s.insH] = uint16(str)
	return int(h)
}

// longestMatch is zlib's longest_match (the portable variant): walk the
// hash chain from curMatch, return the best length (at most lookahead) and
// set matchStart.
func (s *state) longestMatch(curMatch int) int {
	chain := s.cfg.chain
	w := s.window
	scan := s.strstart
	bestLen := s.prevLength
	nice := s.cfg.nice
	limit := 0
	if s.strstart > maxDist {
		limit = s.strstart - maxDist
	}
	if s.prevLength >= s.cfg.good {
		chain >>= 2
	}
	if nice > s.lookahead {
		nice = s.lookahead
	}
	scanEnd1 := w[scan+bestLen-1]
	scanEnd := w[scan+bestLen]
	s0, s1 := w[scan], w[scan+1]
	for {
		m := curMatch
		if w[m+bestLen] == scanEnd && w[m+bestLen-1] == scanEnd1 && w[m] == s0 && w[m+1] == s1 {
			// Bytes 0 and 1 match and byte 2 follows from the equal
			// hashes; compare from byte 3 up to byte 258.
			n := 3
			for n <= maxMatch {
				a := binary.LittleEndian.Uint64(w[scan+n:])
				b := binary.LittleEndian.Uint64(w[m+n:])
				if a != b {
					n += bits.TrailingZeros64(a^b) >> 3
					break
				}
				n += 8
			}
			if n > maxMatch {
				n = maxMatch
			}
			if n > bestLen {
				s.matchStart = curMatch
				bestLen = n
				if n >= nice {
					break
				}
				scanEnd1 = w[scan+bestLen-1]
				scanEnd = w[scan+bestLen]
			}
		}
		curMatch = int(s.prev[curMatch&wmask])
		if curMatch <= limit {
			break
		}
		chain--
		if chain == 0 {
			break
		}
	}
	if bestLen <= s.lookahead {
		return bestLen
	}
	return s.lookahead
}

// flushBlock ends the current block (FLUSH_BLOCK_ONLY).
func (s *state) flushBlock(last bool) {
	var buf []byte
	if s.blockStart >= 0 {
		buf = s.window[s.blockStart:s.strstart]
	}
	s.blk.Flush(&s.bw, buf, int64(s.strstart-s.blockStart), last)
	s.blockStart = s.strstart
}

// midFlush ends a block cut inside the compression loop because the
// symbol buffer filled; it records a checkpoint or stops a resumed
// segment there. It reports whether the segment stops.
func (s *state) midFlush() bool {
	s.flushBlock(false)
	at := s.base + int64(s.blockStart)
	if s.stop >= 0 && at >= s.stop {
		return true
	}
	if s.rec != nil {
		s.rec.blockEnd(s, at)
	}
	return false
}

// deflateFast is zlib's deflate_fast (levels 1..3): no lazy matching, and
// the strings inside a match longer than cfg.lazy are not inserted.
func (s *state) deflateFast(flush int) blockState {
	for {
		if s.lookahead < minLookahead {
			if !s.canFill(flush) {
				return needMore
			}
			s.fillWindow()
			if s.lookahead < minLookahead && flush == noFlush {
				return needMore
			}
			if s.lookahead == 0 {
				break
			}
		}
		hashHead := 0
		if s.lookahead >= minMatch {
			hashHead = s.insertString(s.strstart)
		}
		if hashHead != 0 && s.strstart-hashHead <= maxDist {
			s.matchLength = s.longestMatch(hashHead)
		}
		var full bool
		if s.matchLength >= minMatch {
			s.blk.Match(s.strstart-s.matchStart, s.matchLength)
			full = s.blk.Len() == symEnd
			s.lookahead -= s.matchLength
			if s.matchLength <= s.cfg.lazy && s.lookahead >= minMatch {
				s.matchLength--
				for {
					s.strstart++
					s.insertString(s.strstart)
					s.matchLength--
					if s.matchLength == 0 {
						break
					}
				}
				s.strstart++
			} else {
				if s.rec != nil {
					s.rec.skip(s.base+int64(s.strstart)+1, s.matchLength-1)
				}
				s.strstart += s.matchLength
				s.matchLength = 0
				s.insH = uint32(s.window[s.strstart])
				s.insH = (s.insH<<hashShift ^ uint32(s.window[s.strstart+1])) & hashMask
			}
		} else {
			s.blk.Literal(s.window[s.strstart])
			full = s.blk.Len() == symEnd
			s.lookahead--
			s.strstart++
		}
		if full && s.midFlush() {
			return stopped
		}
	}
	s.insert = min(s.strstart, minMatch-1)
	if flush == finishFlush {
		s.flushBlock(true)
		return finishDone
	}
	if s.blk.Len() > 0 {
		s.flushBlock(false)
	}
	return blockDone
}

// deflateSlow is zlib's deflate_slow (levels 4..9): lazy evaluation of
// matches, every string inserted.
func (s *state) deflateSlow(flush int) blockState {
	for {
		if s.lookahead < minLookahead {
			if !s.canFill(flush) {
				return needMore
			}
			s.fillWindow()
			if s.lookahead < minLookahead && flush == noFlush {
				return needMore
			}
			if s.lookahead == 0 {
				break
			}
		}
		hashHead := 0
		if s.lookahead >= minMatch {
			hashHead = s.insertString(s.strstart)
		}
		s.prevLength, s.prevMatch = s.matchLength, s.matchStart
		s.matchLength = minMatch - 1
		if hashHead != 0 && s.prevLength < s.cfg.lazy && s.strstart-hashHead <= maxDist {
			s.matchLength = s.longestMatch(hashHead)
			if s.matchLength == minMatch && s.strstart-s.matchStart > tooFar {
				s.matchLength = minMatch - 1
			}
		}
		if s.prevLength >= minMatch && s.matchLength <= s.prevLength {
			maxInsert := s.strstart + s.lookahead - minMatch
			s.blk.Match(s.strstart-1-s.prevMatch, s.prevLength)
			full := s.blk.Len() == symEnd
			s.lookahead -= s.prevLength - 1
			s.prevLength -= 2
			for {
				s.strstart++
				if s.strstart <= maxInsert {
					s.insertString(s.strstart)
				}
				s.prevLength--
				if s.prevLength == 0 {
					break
				}
			}
			s.matchAvail = false
			s.matchLength = minMatch - 1
			s.strstart++
			if full && s.midFlush() {
				return stopped
			}
		} else if s.matchAvail {
			s.blk.Literal(s.window[s.strstart-1])
			if s.blk.Len() == symEnd && s.midFlush() {
				return stopped
			}
			s.strstart++
			s.lookahead--
		} else {
			s.matchAvail = true
			s.strstart++
			s.lookahead--
		}
	}
	if s.matchAvail {
		s.blk.Literal(s.window[s.strstart-1])
		s.matchAvail = false
	}
	s.insert = min(s.strstart, minMatch-1)
	if flush == finishFlush {
		s.flushBlock(true)
		return finishDone
	}
	if s.blk.Len() > 0 {
		s.flushBlock(false)
	}
	return blockDone
}

// deflate runs the compressor with the given flush mode, as zlib's
// deflate() does for a raw stream with unlimited output space.
func (s *state) deflate(flush int) blockState {
	old := s.lastFlush
	s.lastFlush = flush
	if s.avail() == 0 && rank(flush) <= rank(old) && flush != finishFlush {
		return needMore // zlib: Z_BUF_ERROR, nothing to do
	}
	if s.finished {
		return finishDone
	}
	if !(s.avail() != 0 || s.lookahead != 0 || flush != noFlush) {
		return needMore
	}
	var bs blockState
	if s.cfg.fast {
		bs = s.deflateFast(flush)
	} else {
		bs = s.deflateSlow(flush)
	}
	switch bs {
	case finishDone:
		s.finished = true
	case blockDone:
		switch flush {
		case partialFlush:
			zhuff.EmptyStaticBlock(&s.bw)
		case blockFlush:
		default:
			zhuff.StoredBlock(&s.bw, nil, false)
			if flush == fullFlush {
				clear(s.head)
				if s.lookahead == 0 {
					// The window rewinds to index 0; input offsets stay
					// continuous: window[0] is now the next input byte.
					s.base = s.consumed()
					s.strstart, s.blockStart, s.insert = 0, 0, 0
				}
				if s.rec != nil {
					s.rec.irregular(s.consumed())
				}
			}
		}
	}
	return bs
}

// consumed is the input offset of the end of the data read into the window.
func (s *state) consumed() int64 {
	return s.base + int64(s.strstart+s.lookahead)
}

// setDictionary is deflateSetDictionary for a raw stream.
func (s *state) setDictionary(dict []byte) {
	c0 := s.consumed()
	if len(dict) >= wsize {
		clear(s.head)
		s.strstart, s.blockStart, s.insert = 0, 0, 0
		dict = dict[len(dict)-wsize:]
	}
	savedIn, savedPos := s.in, s.inPos
	s.in, s.inPos = dict, 0
	s.fillWindow()
	for s.lookahead >= minMatch {
		str := s.strstart
		n := s.lookahead - (minMatch - 1)
		for ; n > 0; n-- {
			s.insertString(str)
			str++
		}
		s.strstart = str
		s.lookahead = minMatch - 1
		s.fillWindow()
	}
	s.strstart += s.lookahead
	s.blockStart = s.strstart
	s.insert = s.lookahead
	s.lookahead = 0
	s.matchLength, s.prevLength = minMatch-1, minMatch-1
	s.matchAvail = false
	s.in, s.inPos = savedIn, savedPos
	// The dictionary is not part of the input: input offsets go on from
	// where they were, at window index strstart.
	s.base = c0 - int64(s.strstart)
}
