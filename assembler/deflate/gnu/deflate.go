package gnu

import (
	"encoding/binary"
	"math/bits"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/slide"
	"github.com/chunkyard/chunkyard/assembler/deflate/internal/zhuff"
)

// GNU gzip's compile-time parameters (gzip.h, deflate.c, trees.c in the
// default, non-SMALL_MEM build).
const (
	wsize        = 0x8000
	wmask        = wsize - 1
	windowSize   = 2 * wsize
	hashBits     = 15
	hashSize     = 1 << hashBits
	hashMask     = hashSize - 1
	hShift       = (hashBits + minMatch - 1) / minMatch
	minMatch     = zhuff.MinMatch
	maxMatch     = zhuff.MaxMatch
	minLookahead = maxMatch + minMatch + 1
	maxDist      = wsize - minLookahead
	litBufSize   = 0x8000
	distBufSize  = 0x8000
	tooFar       = 4096

	// windowSlack follows the window: gzip zeroes two bytes past the data
	// at end of input, which may be past the window, and longestMatch's
	// 8-byte compares may read past its end.
	windowSlack = 16
)

// config is one row of gzip's configuration_table.
type config struct {
	good, lazy, nice, chain int
}

var configs = [10]config{
	{},
	{4, 4, 8, 4},
	{4, 5, 16, 8},
	{4, 6, 32, 32},
	{4, 4, 16, 16},
	{8, 16, 32, 32},
	{8, 16, 128, 128},
	{8, 32, 128, 256},
	{32, 128, 258, 1024},
	{32, 258, 258, 4096},
}

type blockState int

const (
	needMore blockState = iota
	finishDone
	stopped // a resumed segment reached its end checkpoint
)

// state is gzip's deflate state (globals in gzip), with window indexes as
// ints and base the input offset of window[0].
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
	matchStart  int
	matchLength int
	prevLength  int
	prevMatch   int
	matchAvail  bool
	eofile      bool
	started     bool
	finished    bool

	in      []byte
	inPos   int
	closing bool // all input is in (the file's end is known)

	base int64

	blk *zhuff.Block
	bw  zhuff.BitWriter

	rec  *recorder
	stop int64
}

func newState(level int) *state {
	s := &state{
		level:  level,
		cfg:    configs[level],
		window: make([]byte, windowSize+windowSlack),
		prev:   make([]uint16, wsize),
		head:   make([]uint16, hashSize),
		blk:    zhuff.NewBlock(litBufSize),
		in:     make([]byte, 0, 2*windowSize),
		stop:   -1,
	}
	s.matchLength = minMatch - 1
	s.prevLength = minMatch - 1
	return s
}

func (s *state) avail() int { return len(s.in) - s.inPos }

// readBuf reads up to n bytes into the window at index at, as read(2) on
// a regular file does: all n unless the file ends first.
func (s *state) readBuf(at, n int) int {
	k := copy(s.window[at:at+n], s.in[s.inPos:])
	s.inPos += k
	return k
}

// canRead reports whether a read of n bytes may happen now: the input
// holds n bytes, or its end is known.
func (s *state) canRead(n int) bool { return s.closing || s.avail() >= n }

// fillMore is the read size of the next fillWindow.
func (s *state) fillMore() int {
	more := windowSize - s.lookahead - s.strstart
	if s.strstart >= wsize+maxDist {
		more += wsize
	}
	return more
}

// slide.Down moves entries by slide.Half: it must be half the window
// (this fails to compile otherwise).
var _ = [1]struct{}{}[wsize-slide.Half]

// fillWindow is gzip's fill_window: slide the whole upper half down when
// strstart is deep in it, then read; a read of nothing marks the end of
// input and zeroes the two bytes after the data.
func (s *state) fillWindow() {
	more := windowSize - s.lookahead - s.strstart
	if s.strstart >= wsize+maxDist {
		copy(s.window[:wsize], s.window[wsize:windowSize])
		s.matchStart -= wsize
		s.strstart -= wsize
		s.blockStart -= wsize
		s.base += wsize
		slide.Down(s.head)
		slide.Down(s.prev)
		more += wsize
	}
	if !s.eofile {
		n := s.readBuf(s.strstart+s.lookahead, more)
		if n == 0 {
			s.eofile = true
			end := s.strstart + s.lookahead
			s.window[end] = 0
			s.window[end+1] = 0
		} else {
			s.lookahead += n
		}
	}
}

// ensure is gzip's "while (lookahead < MIN_LOOKAHEAD && !eofile)
// fill_window();". It reports false when it must wait for input.
func (s *state) ensure() bool {
	for s.lookahead < minLookahead && !s.eofile {
		if !s.canRead(s.fillMore()) {
			return false
		}
		s.fillWindow()
	}
	return true
}

// lmInit is gzip's lm_init after the tables are cleared: the first read of
// a whole window, then enough lookahead, then the hash of the first bytes.
func (s *state) lmInit() bool {
	if !s.canRead(windowSize) {
		return false
	}
	s.started = true
	s.lookahead = s.readBuf(0, windowSize)
	if s.lookahead == 0 {
		s.eofile = true
		return true
	}
	s.ensure()
	s.insH = 0
	for j := 0; j < minMatch-1; j++ {
		s.insH = (s.insH<<hShift ^ uint32(s.window[j])) & hashMask
	}
	return true
}

func (s *state) insertString(str int) int {
	s.insH = (s.insH<<hShift ^ uint32(s.window[str+minMatch-1])) & hashMask
	h := s.head[s.insH]
	s.prev[str&wmask] = h
	s.head[s.insH] = uint16(str)
	return int(h)
}

// longestMatch is gzip's longest_match (the portable C variant). Unlike
// zlib's it does not stop at the end of the input's data: it compares the
// bytes after it (zeros and an older copy of the window) and returns a
// length the caller caps.
func (s *state) longestMatch(curMatch int) int {
	chain := s.cfg.chain
	w := s.window
	scan := s.strstart
	bestLen := s.prevLength
	limit := 0
	if s.strstart > maxDist {
		limit = s.strstart - maxDist
	}
	if s.prevLength >= s.cfg.good {
		chain >>= 2
	}
	nice := s.cfg.nice
	scanEnd1 := w[scan+bestLen-1]
	scanEnd := w[scan+bestLen]
	s0, s1 := w[scan], w[scan+1]
	for {
		m := curMatch
		if w[m+bestLen] == scanEnd && w[m+bestLen-1] == scanEnd1 && w[m] == s0 && w[m+1] == s1 {
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
	return bestLen
}

// tally is the cut decision of gzip's ct_tally, after the symbol has been
// added: the buffer is full, or (levels 3..9, every 4096 symbols) the
// block looks compressible enough to end here.
func (s *state) tally() bool {
	n := s.blk.Len()
	nd := s.blk.Matches()
	if s.level > 2 && n&0xfff == 0 {
		out := int64(n) * 8
		in := int64(s.strstart - s.blockStart)
		for d := range zhuff.DistCodes {
			out += int64(s.blk.DistFreq(d)) * int64(5+zhuff.DistExtraBits(d))
		}
		out >>= 3
		if nd < n/2 && out < in/2 {
			return true
		}
	}
	return n == litBufSize-1 || nd == distBufSize
}

// flushBlock is FLUSH_BLOCK.
func (s *state) flushBlock(eof bool) {
	var buf []byte
	if s.blockStart >= 0 {
		buf = s.window[s.blockStart:s.strstart]
	}
	s.blk.Flush(&s.bw, buf, int64(s.strstart-s.blockStart), eof)
}

// midFlush ends a block inside the loop and sets block_start; it records a
// checkpoint or reports that a resumed segment stops here.
func (s *state) midFlush() bool {
	s.flushBlock(false)
	s.blockStart = s.strstart
	at := s.base + int64(s.blockStart)
	if s.stop >= 0 && at >= s.stop {
		return true
	}
	if s.rec != nil {
		s.rec.blockEnd(s, at)
	}
	return false
}

// deflateFast is gzip's deflate_fast (levels 1..3).
func (s *state) deflateFast() blockState {
	for {
		if !s.ensure() {
			return needMore
		}
		if s.lookahead == 0 {
			break
		}
		hashHead := s.insertString(s.strstart)
		if hashHead != 0 && s.strstart-hashHead <= maxDist && s.strstart <= windowSize-minLookahead {
			s.matchLength = s.longestMatch(hashHead)
			if s.matchLength > s.lookahead {
				s.matchLength = s.lookahead
			}
		}
		var flush bool
		if s.matchLength >= minMatch {
			s.blk.Match(s.strstart-s.matchStart, s.matchLength)
			flush = s.tally()
			s.lookahead -= s.matchLength
			if s.matchLength <= s.cfg.lazy {
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
				s.insH = (s.insH<<hShift ^ uint32(s.window[s.strstart+1])) & hashMask
			}
		} else {
			s.blk.Literal(s.window[s.strstart])
			flush = s.tally()
			s.lookahead--
			s.strstart++
		}
		if flush && s.midFlush() {
			return stopped
		}
	}
	s.flushBlock(true)
	return finishDone
}

// deflateLazy is gzip's deflate() proper (levels 4..9).
func (s *state) deflateLazy() blockState {
	for {
		if !s.ensure() {
			return needMore
		}
		if s.lookahead == 0 {
			break
		}
		hashHead := s.insertString(s.strstart)
		s.prevLength, s.prevMatch = s.matchLength, s.matchStart
		s.matchLength = minMatch - 1
		if hashHead != 0 && s.prevLength < s.cfg.lazy && s.strstart-hashHead <= maxDist && s.strstart <= windowSize-minLookahead {
			s.matchLength = s.longestMatch(hashHead)
			if s.matchLength > s.lookahead {
				s.matchLength = s.lookahead
			}
			if s.matchLength == minMatch && s.strstart-s.matchStart > tooFar {
				s.matchLength--
			}
		}
		if s.prevLength >= minMatch && s.matchLength <= s.prevLength {
			s.blk.Match(s.strstart-1-s.prevMatch, s.prevLength)
			flush := s.tally()
			s.lookahead -= s.prevLength - 1
			s.prevLength -= 2
			for {
				s.strstart++
				s.insertString(s.strstart)
				s.prevLength--
				if s.prevLength == 0 {
					break
				}
			}
			s.matchAvail = false
			s.matchLength = minMatch - 1
			s.strstart++
			if flush && s.midFlush() {
				return stopped
			}
		} else if s.matchAvail {
			s.blk.Literal(s.window[s.strstart-1])
			if s.tally() && s.midFlush() {
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
	s.flushBlock(true)
	return finishDone
}

// run advances the encoder as far as the buffered input allows.
func (s *state) run() blockState {
	if s.finished {
		return finishDone
	}
	if !s.started && !s.lmInit() {
		return needMore
	}
	var bs blockState
	if s.level <= 3 {
		bs = s.deflateFast()
	} else {
		bs = s.deflateLazy()
	}
	if bs == finishDone {
		s.finished = true
	}
	return bs
}
