package deflate

import "math/bits"

// A token is one LZ77 symbol of a block: a literal byte, or a match of
// length 3..258 at distance 1..32768.
//
//	bit 31     : 1 for a match
//	bits 16..23: length-3 (match)
//	bits 0..15 : distance-1 (match) or the literal byte
type token uint32

const matchBit = 1 << 31

func literalToken(b byte) token { return token(b) }

func matchToken(length, dist int) token {
	return matchBit | token(length-3)<<16 | token(dist-1)
}

func (t token) isMatch() bool { return t&matchBit != 0 }

// lenX is length-3 of a match.
func (t token) lenX() uint32 { return uint32(t>>16) & 0xff }

// distX is distance-1 of a match.
func (t token) distX() uint32 { return uint32(t) & 0xffff }

// Symbol alphabets of RFC 1951 section 3.2.5.
const (
	numLitLen   = 286 // literal/length symbols 0..285
	numDist     = 30  // distance symbols 0..29
	numCLen     = 19  // code length symbols 0..18
	endOfBlock  = 256
	firstLenSym = 257
)

// lengthSym maps length-3 (0..255) to its length code 0..28 (symbol 257+code).
var lengthSym [256]uint8

// Length codes: base length and extra bits.
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
)

func init() {
	for c := 0; c < 28; c++ {
		for l := int(lengthBase[c]); l < int(lengthBase[c])+1<<lengthExtra[c] && l <= 258; l++ {
			lengthSym[l-3] = uint8(c)
		}
	}
	lengthSym[258-3] = 28 // 258 has its own code, not code 27 with all extra bits set
}

// distSym returns the distance code 0..29 of distance-1.
func distSym(dx uint32) uint32 {
	if dx < 4 {
		return dx
	}
	nb := uint32(bits.Len32(dx)) - 1
	return 2*nb + (dx>>(nb-1))&1
}

// distExtra returns the number of extra bits of distance code c and the
// distance-1 its first distance stands for.
func distExtra(c uint32) (nbits uint, base uint32) {
	if c < 4 {
		return 0, c
	}
	nb := c/2 - 1
	return uint(nb), (2 + c&1) << nb
}
