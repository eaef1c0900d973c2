package deflate

// blockWriter turns a block (tokens, or raw bytes for Huffman-only) into
// bits, choosing among stored, fixed and dynamic Huffman encodings exactly
// as Go's compress/flate does:
//
//   - writeTokens (levels 2..9): the smallest of fixed and dynamic (dynamic
//     only when strictly smaller), then stored when the block's bytes are
//     still known, at most 65535, and strictly smaller.
//   - writeTokensDynamic (level 1): dynamic, or stored when stored is
//     smaller than the dynamic size plus 1/16 of it (extra bits of lengths
//     and distances not counted).
//   - writeHuffOnly (level -2, and level 1's nearly incompressible blocks):
//     literals only, dynamic, with the same 1/16 rule.
//
// A block without any match still declares one distance code (distance
// code 0 with frequency 1), which also enters the fixed-size estimate.
type blockWriter struct {
	bw       *bitWriter
	litFreq  [numLitLen]int32
	distFreq [numDist]int32
	lit      *huffman
	dist     *huffman
	clen     *huffman
	clenFreq [numCLen]int32
	cgen     [numLitLen + numDist + 1]uint8 // run-length coded code lengths
	cgenLen  int
}

func newBlockWriter(bw *bitWriter) *blockWriter {
	return &blockWriter{
		bw:   bw,
		lit:  newHuffman(numLitLen),
		dist: newHuffman(numDist),
		clen: newHuffman(numCLen),
	}
}

// Fixed Huffman codes (RFC 1951 3.2.6) and the one-symbol distance code
// of Huffman-only blocks.
var (
	fixedLit     [numLitLen]hcode
	fixedDist    [numDist]hcode
	huffOnlyDist [numDist]hcode
)

func init() {
	var count [maxCodeBits + 1]int32
	for s := range fixedLit {
		l := uint8(8)
		switch {
		case s >= 144 && s < 256:
			l = 9
		case s >= 256 && s < 280:
			l = 7
		}
		fixedLit[s].len = l
		count[l]++
	}
	// The fixed code has 288 symbols; 286 and 287 are never sent but take
	// their places among the 8-bit codes.
	count[8] += 2
	assignCanonical(fixedLit[:], &count)
	for s := range fixedDist {
		fixedDist[s].len = 5
	}
	assignCanonical(fixedDist[:], &[maxCodeBits + 1]int32{5: numDist})
	huffOnlyDist[0] = hcode{code: 0, len: 1}
}

func codesBits(codes []hcode, freq []int32) int {
	total := 0
	for i, f := range freq {
		total += int(f) * int(codes[i].len)
	}
	return total
}

// Order in which code length code lengths are sent.
var clenOrder = [numCLen]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// histogram counts tokens plus one end-of-block and returns the number of
// literal/length and distance codes to declare.
func (b *blockWriter) histogram(tokens []token) (nlit, ndist int) {
	b.litFreq = [numLitLen]int32{}
	b.distFreq = [numDist]int32{}
	for _, t := range tokens {
		if !t.isMatch() {
			b.litFreq[t]++
			continue
		}
		b.litFreq[firstLenSym+int(lengthSym[t.lenX()])]++
		b.distFreq[distSym(t.distX())]++
	}
	b.litFreq[endOfBlock]++
	nlit = numLitLen
	for b.litFreq[nlit-1] == 0 {
		nlit--
	}
	ndist = numDist
	for ndist > 0 && b.distFreq[ndist-1] == 0 {
		ndist--
	}
	if ndist == 0 {
		b.distFreq[0] = 1
		ndist = 1
	}
	b.lit.build(b.litFreq[:], 15)
	b.dist.build(b.distFreq[:], 15)
	return nlit, ndist
}

// codegen run-length codes the code lengths of lit[:nlit] and dist[:ndist]
// (RFC 1951 3.2.7) into b.cgen, counts the symbols in b.clenFreq, and
// builds the code length code.
func (b *blockWriter) codegen(lit []hcode, nlit int, dist []hcode, ndist int) {
	b.clenFreq = [numCLen]int32{}
	lens := b.cgen[:0]
	emit := func(sym uint8) { lens = append(lens, sym); b.clenFreq[sym]++ }
	emitRep := func(sym uint8, extra int) { lens = append(lens, sym, uint8(extra)); b.clenFreq[sym]++ }

	n := nlit + ndist
	at := func(i int) uint8 {
		if i < nlit {
			return lit[i].len
		}
		return dist[i-nlit].len
	}
	for i := 0; i < n; {
		size := at(i)
		run := 1
		for i+run < n && at(i+run) == size {
			run++
		}
		i += run
		if size != 0 {
			emit(size)
			run--
			for run >= 3 {
				k := min(run, 6)
				emitRep(16, k-3)
				run -= k
			}
		} else {
			for run >= 11 {
				k := min(run, 138)
				emitRep(18, k-11)
				run -= k
			}
			if run >= 3 {
				emitRep(17, run-3)
				run = 0
			}
		}
		for ; run > 0; run-- {
			emit(size)
		}
	}
	b.cgenLen = len(lens)
	b.clen.build(b.clenFreq[:], 7)
}

// dynamicBits is the size of a dynamic block with the current histogram,
// codes and codegen, plus extra; it also returns how many code length
// code lengths the header sends.
func (b *blockWriter) dynamicBits(dist []hcode, extra int) (size, nclen int) {
	nclen = numCLen
	for nclen > 4 && b.clenFreq[clenOrder[nclen-1]] == 0 {
		nclen--
	}
	header := 3 + 5 + 5 + 4 + 3*nclen +
		b.clen.bitLength(b.clenFreq[:]) +
		int(b.clenFreq[16])*2 + int(b.clenFreq[17])*3 + int(b.clenFreq[18])*7
	return header + b.lit.bitLength(b.litFreq[:]) + codesBits(dist, b.distFreq[:]) + extra, nclen
}

// storedBits is the size of input as one stored block, and whether it
// can be one.
func storedBits(input []byte) (int, bool) {
	if input == nil || len(input) > maxStored {
		return 0, false
	}
	return (len(input) + 5) * 8, true
}

const maxStored = 65535

func (b *blockWriter) writeStored(p []byte, final bool) {
	flag := uint64(0)
	if final {
		flag = 1
	}
	b.bw.put(flag, 3)
	b.bw.align()
	b.bw.put(uint64(len(p))|uint64(^uint16(len(p)))<<16, 32)
	b.bw.putBytes(p)
}

func (b *blockWriter) writeDynamicHeader(nlit, ndist, nclen int, final bool) {
	first := uint64(4)
	if final {
		first = 5
	}
	b.bw.put(first, 3)
	b.bw.put(uint64(nlit-257), 5)
	b.bw.put(uint64(ndist-1), 5)
	b.bw.put(uint64(nclen-4), 4)
	for _, s := range clenOrder[:nclen] {
		b.bw.put(uint64(b.clen.codes[s].len), 3)
	}
	cg := b.cgen[:b.cgenLen]
	for i := 0; i < len(cg); i++ {
		s := cg[i]
		b.bw.putCode(b.clen.codes[s])
		switch s {
		case 16:
			i++
			b.bw.put(uint64(cg[i]), 2)
		case 17:
			i++
			b.bw.put(uint64(cg[i]), 3)
		case 18:
			i++
			b.bw.put(uint64(cg[i]), 7)
		}
	}
}

// extraBits is the number of length and distance extra bits of the
// current histogram.
func (b *blockWriter) extraBits(nlit, ndist int) int {
	extra := 0
	for c := firstLenSym + 8; c < nlit; c++ {
		extra += int(b.litFreq[c]) * int(lengthExtra[c-firstLenSym])
	}
	for c := 4; c < ndist; c++ {
		nb, _ := distExtra(uint32(c))
		extra += int(b.distFreq[c]) * int(nb)
	}
	return extra
}

// writeTokens writes a block of tokens for levels 2..9; input is the
// block's bytes, or nil when they are no longer in the window.
func (b *blockWriter) writeTokens(tokens []token, final bool, input []byte) {
	nlit, ndist := b.histogram(tokens)
	stored, storable := storedBits(input)
	extra := 0
	if storable {
		extra = b.extraBits(nlit, ndist)
	}
	litCodes, distCodes := fixedLit[:], fixedDist[:]
	size := 3 + codesBits(fixedLit[:], b.litFreq[:]) + codesBits(fixedDist[:], b.distFreq[:]) + extra

	b.codegen(b.lit.codes, nlit, b.dist.codes, ndist)
	dyn, nclen := b.dynamicBits(b.dist.codes, extra)
	if dyn < size {
		size = dyn
		litCodes, distCodes = b.lit.codes, b.dist.codes
	}
	if storable && stored < size {
		b.writeStored(input, final)
		return
	}
	if &litCodes[0] == &fixedLit[0] {
		fl := uint64(2)
		if final {
			fl = 3
		}
		b.bw.put(fl, 3)
	} else {
		b.writeDynamicHeader(nlit, ndist, nclen, final)
	}
	b.writeSymbols(tokens, litCodes, distCodes)
}

// writeTokensDynamic writes a block of tokens for level 1.
func (b *blockWriter) writeTokensDynamic(tokens []token, final bool, input []byte) {
	nlit, ndist := b.histogram(tokens)
	b.codegen(b.lit.codes, nlit, b.dist.codes, ndist)
	size, nclen := b.dynamicBits(b.dist.codes, 0)
	if stored, ok := storedBits(input); ok && stored < size+size>>4 {
		b.writeStored(input, final)
		return
	}
	b.writeDynamicHeader(nlit, ndist, nclen, final)
	b.writeSymbols(tokens, b.lit.codes, b.dist.codes)
}

func (b *blockWriter) writeSymbols(tokens []token, lit, dist []hcode) {
	bw := b.bw
	for _, t := range tokens {
		if !t.isMatch() {
			bw.putCode(lit[t])
			continue
		}
		lx := t.lenX()
		lc := lengthSym[lx]
		bw.putCode(lit[firstLenSym+int(lc)])
		if nb := lengthExtra[lc]; nb > 0 {
			bw.put(uint64(lx+3-uint32(lengthBase[lc])), uint(nb))
		}
		dx := t.distX()
		dc := distSym(dx)
		bw.putCode(dist[dc])
		if nb, base := distExtra(dc); nb > 0 {
			bw.put(uint64(dx-base), nb)
		}
	}
	bw.putCode(lit[endOfBlock])
}

// writeHuffOnly writes input as literals only.
func (b *blockWriter) writeHuffOnly(final bool, input []byte) {
	b.litFreq = [numLitLen]int32{}
	for _, c := range input {
		b.litFreq[c]++
	}
	b.litFreq[endOfBlock] = 1
	b.distFreq = [numDist]int32{0: 1}
	b.lit.build(b.litFreq[:], 15)
	const nlit, ndist = endOfBlock + 1, 1
	b.codegen(b.lit.codes, nlit, huffOnlyDist[:], ndist)
	size, nclen := b.dynamicBits(huffOnlyDist[:], 0)
	if stored, ok := storedBits(input); ok && stored < size+size>>4 {
		b.writeStored(input, final)
		return
	}
	b.writeDynamicHeader(nlit, ndist, nclen, final)
	codes := b.lit.codes
	bw := b.bw
	for _, c := range input {
		bw.putCode(codes[c])
	}
	bw.putCode(codes[endOfBlock])
}
