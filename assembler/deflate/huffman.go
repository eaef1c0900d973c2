package deflate

import (
	"math"
	"math/bits"
	"slices"
)

// hcode is a Huffman code word, already bit-reversed for LSB-first output,
// and its length in bits (0: the symbol is not used).
type hcode struct {
	code uint16
	len  uint8
}

// huffman builds length-limited canonical Huffman codes the way Go's
// compress/flate does. The code lengths of an optimal length-limited code
// are not unique when frequencies tie, so reproducing that encoder's
// output means reproducing its choice: symbols are ordered by (frequency,
// symbol); the number of symbols of each length comes from the same
// boundary package-merge walk (a leaf is taken only when strictly cheaper
// than a pair); the most frequent symbols get the shortest lengths, and
// among equal frequencies the larger symbol value counts as more frequent.
// Codes are then assigned canonically (RFC 1951 section 3.2.2).
type huffman struct {
	codes []hcode
	nodes []symFreq // scratch
}

type symFreq struct {
	sym  uint16
	freq int32
}

func newHuffman(n int) *huffman {
	return &huffman{codes: make([]hcode, n), nodes: make([]symFreq, 0, n)}
}

// bitLength is the number of bits freq costs with these codes.
func (h *huffman) bitLength(freq []int32) int {
	total := 0
	for i, f := range freq {
		total += int(f) * int(h.codes[i].len)
	}
	return total
}

// build sets h.codes from freq (len(freq) == len(h.codes)) with no code
// longer than maxBits.
func (h *huffman) build(freq []int32, maxBits int) {
	list := h.nodes[:0]
	for i, f := range freq {
		if f != 0 {
			list = append(list, symFreq{uint16(i), f})
		}
		h.codes[i] = hcode{}
	}
	h.nodes = list
	if len(list) <= 2 {
		// One or two symbols: one bit each, in symbol order.
		for i, n := range list {
			h.codes[n.sym] = hcode{code: uint16(i), len: 1}
		}
		return
	}
	slices.SortFunc(list, func(a, b symFreq) int {
		if a.freq != b.freq {
			return int(a.freq) - int(b.freq)
		}
		return int(a.sym) - int(b.sym)
	})
	var count [maxCodeBits + 1]int32
	lengthCounts(list, maxBits, &count)

	// The last count[1] symbols of list get 1 bit, the count[2] before
	// them 2 bits, and so on.
	end := len(list)
	for l := 1; l < len(count); l++ {
		for _, n := range list[end-int(count[l]) : end] {
			h.codes[n.sym].len = uint8(l)
		}
		end -= int(count[l])
	}
	assignCanonical(h.codes, &count)
}

const maxCodeBits = 15

// assignCanonical gives each used symbol its canonical code (RFC 1951
// 3.2.2), bit-reversed. count[l] is the number of symbols of length l.
func assignCanonical(codes []hcode, count *[maxCodeBits + 1]int32) {
	var next [maxCodeBits + 2]uint16
	code := uint16(0)
	for l := 1; l <= maxCodeBits; l++ {
		code = (code + uint16(count[l-1])) << 1 // count[0] is 0
		next[l] = code
	}
	for i := range codes {
		l := codes[i].len
		if l == 0 {
			continue
		}
		codes[i].code = bits.Reverse16(next[l]) >> (16 - l)
		next[l]++
	}
}

// lengthCounts computes, for list (len >= 3, sorted by increasing
// frequency), how many symbols get each code length 1..maxBits, by the
// boundary package-merge walk: one chain per level, each level holding the
// cheapest items (leaves or pairs of the level below) still needed, pairs
// preferred on ties.
func lengthCounts(list []symFreq, maxBits int, count *[maxCodeBits + 1]int32) {
	n := int32(len(list))
	if int32(maxBits) > n-1 {
		maxBits = int(n - 1)
	}
	freqAt := func(i int32) int32 {
		if i < n {
			return list[i].freq
		}
		return math.MaxInt32
	}
	type level struct {
		last     int32 // frequency of the last item of this level
		nextLeaf int32 // frequency of the next leaf this level could take
		nextPair int32 // frequency of the next pair from the level below
		needed   int32 // items still to take at this level
	}
	var lv [maxCodeBits + 2]level
	// leaves[l][j]: leaves to the left of the level-j ancestor of the
	// rightmost item at level l.
	var leaves [maxCodeBits + 2][maxCodeBits + 2]int32
	for l := 1; l <= maxBits; l++ {
		lv[l] = level{last: list[1].freq, nextLeaf: list[2].freq, nextPair: list[0].freq + list[1].freq}
		leaves[l][l] = 2
	}
	lv[1].nextPair = math.MaxInt32
	lv[maxBits].needed = 2*n - 4

	l := maxBits
	for {
		cur := &lv[l]
		if cur.nextPair == math.MaxInt32 && cur.nextLeaf == math.MaxInt32 {
			// Nothing left to take here; never come back.
			cur.needed = 0
			lv[l+1].nextPair = math.MaxInt32
			l++
			continue
		}
		prev := cur.last
		if cur.nextLeaf < cur.nextPair {
			k := leaves[l][l] + 1
			cur.last = cur.nextLeaf
			leaves[l][l] = k
			cur.nextLeaf = freqAt(k)
		} else {
			cur.last = cur.nextPair
			copy(leaves[l][:l], leaves[l-1][:l])
			lv[l-1].needed = 2
		}
		cur.needed--
		if cur.needed == 0 {
			if l == maxBits {
				break
			}
			lv[l+1].nextPair = prev + cur.last
			l++
		} else {
			for lv[l-1].needed > 0 {
				l--
			}
		}
	}
	if leaves[maxBits][maxBits] != n {
		panic("deflate: Huffman length computation lost leaves")
	}
	*count = [maxCodeBits + 1]int32{}
	b := 1
	for l := maxBits; l > 0; l-- {
		count[b] = leaves[maxBits][l] - leaves[maxBits][l-1]
		b++
	}
}
