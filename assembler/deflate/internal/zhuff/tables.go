package zhuff

// Deflate's code spaces (RFC 1951) and the constants zlib and GNU gzip
// share for building trees.
const (
	lengthCodes = 29
	literals    = 256
	lCodes      = literals + 1 + lengthCodes // 286
	dCodes      = 30
	blCodes     = 19
	heapSize    = 2*lCodes + 1
	maxBits     = 15
	maxBLBits   = 7
	endBlock    = 256
	rep3to6     = 16
	repZ3to10   = 17
	repZ11to138 = 18

	// MinMatch and MaxMatch bound match lengths.
	MinMatch = 3
	MaxMatch = 258
)

var extraLBits = [lengthCodes]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}

var extraDBits = [dCodes]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

var extraBLBits = [blCodes]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7}

// blOrder is the order in which bit-length code lengths are sent.
var blOrder = [blCodes]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// codeTables are the read-only mappings from lengths and distances to
// codes, and the fixed (static) trees, built once.
type codeTables struct {
	lengthCode [MaxMatch - MinMatch + 1]uint8 // match length-3 -> length code
	baseLength [lengthCodes]uint16
	distCode   [512]uint8 // see dCode
	baseDist   [dCodes]uint16

	staticLCode [lCodes + 2]uint16
	staticLLen  [lCodes + 2]uint16
	staticDCode [dCodes]uint16
	staticDLen  [dCodes]uint16
}

var tables = buildTables()

func buildTables() *codeTables {
	t := new(codeTables)
	length := 0
	for code := 0; code < lengthCodes-1; code++ {
		t.baseLength[code] = uint16(length)
		for n := 0; n < 1<<extraLBits[code]; n++ {
			t.lengthCode[length] = uint8(code)
			length++
		}
	}
	// Length 258 (index 255) has its own code, overwriting the last entry
	// of code 27's range, exactly as both originals do.
	t.lengthCode[length-1] = lengthCodes - 1
	t.baseLength[lengthCodes-1] = uint16(length - 1)

	dist := 0
	for code := 0; code < 16; code++ {
		t.baseDist[code] = uint16(dist)
		for n := 0; n < 1<<extraDBits[code]; n++ {
			t.distCode[dist] = uint8(code)
			dist++
		}
	}
	dist >>= 7
	for code := 16; code < dCodes; code++ {
		t.baseDist[code] = uint16(dist << 7)
		for n := 0; n < 1<<(extraDBits[code]-7); n++ {
			t.distCode[256+dist] = uint8(code)
			dist++
		}
	}

	var count [maxBits + 1]int
	n := 0
	for ; n <= 143; n++ {
		t.staticLLen[n] = 8
		count[8]++
	}
	for ; n <= 255; n++ {
		t.staticLLen[n] = 9
		count[9]++
	}
	for ; n <= 279; n++ {
		t.staticLLen[n] = 7
		count[7]++
	}
	for ; n <= 287; n++ {
		t.staticLLen[n] = 8
		count[8]++
	}
	genCodes(t.staticLCode[:], t.staticLLen[:], lCodes+1, &count)
	for n := 0; n < dCodes; n++ {
		t.staticDLen[n] = 5
		t.staticDCode[n] = uint16(reverse(uint32(n), 5))
	}
	return t
}

// dCode maps a match distance minus one to its distance code.
func dCode(dist uint32) uint8 {
	if dist < 256 {
		return tables.distCode[dist]
	}
	return tables.distCode[256+(dist>>7)]
}

// reverse reverses the n low bits of code.
func reverse(code uint32, n uint) uint32 {
	var r uint32
	for ; n > 0; n-- {
		r = r<<1 | code&1
		code >>= 1
	}
	return r
}

// genCodes assigns canonical codes (bit-reversed for LSB-first output) to
// the symbols 0..maxCode from their lengths and the count of each length.
func genCodes(codes []uint16, lens []uint16, maxCode int, count *[maxBits + 1]int) {
	var next [maxBits + 1]uint32
	code := uint32(0)
	for bits := 1; bits <= maxBits; bits++ {
		code = (code + uint32(count[bits-1])) << 1
		next[bits] = code
	}
	for n := 0; n <= maxCode; n++ {
		l := lens[n]
		if l == 0 {
			continue
		}
		codes[n] = uint16(reverse(next[l], uint(l)))
		next[l]++
	}
}
