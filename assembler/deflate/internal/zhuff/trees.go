package zhuff

// tree is one Huffman tree under construction: leaves 0..elems-1, internal
// nodes after them (the layout both originals use, which decides how ties
// break).
type tree struct {
	freq []uint32
	dad  []uint16
	len  []uint16
	code []uint16

	maxCode int // largest symbol with a non-zero frequency

	// static description
	stLen     []uint16 // static tree lengths, or nil
	extra     []uint8
	extraBase int
	elems     int
	maxLength int
}

func newTree(nodes int, stLen []uint16, extra []uint8, extraBase, elems, maxLength int) tree {
	return tree{
		freq: make([]uint32, nodes), dad: make([]uint16, nodes),
		len: make([]uint16, nodes), code: make([]uint16, nodes),
		stLen: stLen, extra: extra, extraBase: extraBase, elems: elems, maxLength: maxLength,
	}
}

// Block collects the symbols of one deflate block and writes the block
// with the cheapest of stored, fixed and dynamic codes, choosing and
// building the trees exactly as zlib's trees.c (and GNU gzip's, from which
// it descends) do.
type Block struct {
	syms    []uint32 // dist<<8 | lc: dist 0 for a literal lc, else match distance and length-3
	matches int      // number of matches among syms

	l, d, bl tree

	heap    [heapSize]int
	heapLen int
	heapMax int
	depth   [heapSize]uint8
	blCount [maxBits + 1]int

	optLen    int64
	staticLen int64
}

// NewBlock returns an empty block with room for capacity symbols.
func NewBlock(capacity int) *Block {
	b := &Block{syms: make([]uint32, 0, capacity)}
	b.l = newTree(heapSize, tables.staticLLen[:], extraLBits[:], literals+1, lCodes, maxBits)
	b.d = newTree(2*dCodes+1, tables.staticDLen[:], extraDBits[:], 0, dCodes, maxBits)
	b.bl = newTree(2*blCodes+1, nil, extraBLBits[:], 0, blCodes, maxBLBits)
	b.Reset()
	return b
}

// Reset empties the block (zlib's init_block).
func (b *Block) Reset() {
	clear(b.l.freq[:lCodes])
	clear(b.d.freq[:dCodes])
	clear(b.bl.freq[:blCodes])
	b.l.freq[endBlock] = 1
	b.optLen, b.staticLen = 0, 0
	b.syms = b.syms[:0]
	b.matches = 0
}

// Len is the number of symbols in the block.
func (b *Block) Len() int { return len(b.syms) }

// Matches is the number of matches in the block.
func (b *Block) Matches() int { return b.matches }

// DistFreq is how many matches of the block use distance code c.
func (b *Block) DistFreq(c int) uint32 { return b.d.freq[c] }

// DistExtraBits is the number of extra bits of distance code c.
func DistExtraBits(c int) int { return int(extraDBits[c]) }

// DistCodes is the number of distance codes.
const DistCodes = dCodes

// Literal records a literal byte.
func (b *Block) Literal(c byte) {
	b.syms = append(b.syms, uint32(c))
	b.l.freq[c]++
}

// Match records a match of length (3..258) at distance (1..32768).
func (b *Block) Match(dist, length int) {
	lc := uint32(length - MinMatch)
	b.syms = append(b.syms, uint32(dist)<<8|lc)
	b.matches++
	b.l.freq[int(tables.lengthCode[lc])+literals+1]++
	b.d.freq[dCode(uint32(dist-1))]++
}

// smaller is the heap order: by frequency, ties broken by subtree depth.
func (b *Block) smaller(t *tree, n, m int) bool {
	return t.freq[n] < t.freq[m] || (t.freq[n] == t.freq[m] && b.depth[n] <= b.depth[m])
}

func (b *Block) pqdownheap(t *tree, k int) {
	v := b.heap[k]
	j := k << 1
	for j <= b.heapLen {
		if j < b.heapLen && b.smaller(t, b.heap[j+1], b.heap[j]) {
			j++
		}
		if b.smaller(t, v, b.heap[j]) {
			break
		}
		b.heap[k] = b.heap[j]
		k = j
		j <<= 1
	}
	b.heap[k] = v
}

// genBitlen computes the code lengths from the tree shape, limiting them to
// t.maxLength the way both originals do, and adds the block's cost in bits
// under this tree (and under the static tree) to optLen and staticLen.
func (b *Block) genBitlen(t *tree) {
	for bits := range b.blCount {
		b.blCount[bits] = 0
	}
	t.len[b.heap[b.heapMax]] = 0 // root
	overflow := 0
	h := b.heapMax + 1
	for ; h < heapSize; h++ {
		n := b.heap[h]
		bits := int(t.len[t.dad[n]]) + 1
		if bits > t.maxLength {
			bits = t.maxLength
			overflow++
		}
		t.len[n] = uint16(bits)
		if n > t.maxCode {
			continue // not a leaf
		}
		b.blCount[bits]++
		xbits := 0
		if n >= t.extraBase {
			xbits = int(t.extra[n-t.extraBase])
		}
		f := int64(t.freq[n])
		b.optLen += f * int64(bits+xbits)
		if t.stLen != nil {
			b.staticLen += f * int64(int(t.stLen[n])+xbits)
		}
	}
	if overflow == 0 {
		return
	}
	for overflow > 0 {
		bits := t.maxLength - 1
		for b.blCount[bits] == 0 {
			bits--
		}
		b.blCount[bits]--
		b.blCount[bits+1] += 2
		b.blCount[t.maxLength]--
		overflow -= 2
	}
	for bits := t.maxLength; bits != 0; bits-- {
		n := b.blCount[bits]
		for n != 0 {
			h--
			m := b.heap[h]
			if m > t.maxCode {
				continue
			}
			if int(t.len[m]) != bits {
				b.optLen += int64(bits-int(t.len[m])) * int64(t.freq[m])
				t.len[m] = uint16(bits)
			}
			n--
		}
	}
}

// buildTree builds the Huffman tree of t from its frequencies, sets the
// code lengths and codes, and updates optLen and staticLen.
func (b *Block) buildTree(t *tree) {
	elems := t.elems
	maxCode := -1
	b.heapLen = 0
	b.heapMax = heapSize
	for n := 0; n < elems; n++ {
		if t.freq[n] != 0 {
			b.heapLen++
			b.heap[b.heapLen] = n
			maxCode = n
			b.depth[n] = 0
		} else {
			t.len[n] = 0
		}
	}
	// Force at least two codes of non-zero frequency.
	for b.heapLen < 2 {
		node := 0
		if maxCode < 2 {
			maxCode++
			node = maxCode
		}
		b.heapLen++
		b.heap[b.heapLen] = node
		t.freq[node] = 1
		b.depth[node] = 0
		b.optLen--
		if t.stLen != nil {
			b.staticLen -= int64(t.stLen[node])
		}
	}
	t.maxCode = maxCode
	for n := b.heapLen / 2; n >= 1; n-- {
		b.pqdownheap(t, n)
	}
	node := elems
	for {
		n := b.heap[1]
		b.heap[1] = b.heap[b.heapLen]
		b.heapLen--
		b.pqdownheap(t, 1)
		m := b.heap[1]
		b.heapMax--
		b.heap[b.heapMax] = n
		b.heapMax--
		b.heap[b.heapMax] = m
		t.freq[node] = t.freq[n] + t.freq[m]
		dn, dm := b.depth[n], b.depth[m]
		if dm > dn {
			dn = dm
		}
		b.depth[node] = dn + 1
		t.dad[n] = uint16(node)
		t.dad[m] = uint16(node)
		b.heap[1] = node
		node++
		b.pqdownheap(t, 1)
		if b.heapLen < 2 {
			break
		}
	}
	b.heapMax--
	b.heap[b.heapMax] = b.heap[1]
	b.genBitlen(t)

	genCodes(t.code, t.len, maxCode, &b.blCount)
}

// lenAt reads a code length with the guard both originals place after the
// last code (an impossible length that ends every run).
func lenAt(t *tree, n, maxCode int) int {
	if n > maxCode {
		return 0xffff
	}
	return int(t.len[n])
}

// scanTree counts the bit-length codes needed to send t's lengths.
func (b *Block) scanTree(t *tree, maxCode int) {
	prevlen := -1
	nextlen := int(t.len[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = lenAt(t, n+1, maxCode)
		count++
		if count < maxCount && curlen == nextlen {
			continue
		} else if count < minCount {
			b.bl.freq[curlen] += uint32(count)
		} else if curlen != 0 {
			if curlen != prevlen {
				b.bl.freq[curlen]++
			}
			b.bl.freq[rep3to6]++
		} else if count <= 10 {
			b.bl.freq[repZ3to10]++
		} else {
			b.bl.freq[repZ11to138]++
		}
		count = 0
		prevlen = curlen
		if nextlen == 0 {
			maxCount, minCount = 138, 3
		} else if curlen == nextlen {
			maxCount, minCount = 6, 3
		} else {
			maxCount, minCount = 7, 4
		}
	}
}

func (b *Block) sendCode(w *BitWriter, t *tree, c int) {
	w.PutBits(uint32(t.code[c]), uint(t.len[c]))
}

// sendTree sends t's code lengths with the bit-length code.
func (b *Block) sendTree(w *BitWriter, t *tree, maxCode int) {
	prevlen := -1
	nextlen := int(t.len[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextlen == 0 {
		maxCount, minCount = 138, 3
	}
	for n := 0; n <= maxCode; n++ {
		curlen := nextlen
		nextlen = lenAt(t, n+1, maxCode)
		count++
		if count < maxCount && curlen == nextlen {
			continue
		} else if count < minCount {
			for ; count != 0; count-- {
				b.sendCode(w, &b.bl, curlen)
			}
		} else if curlen != 0 {
			if curlen != prevlen {
				b.sendCode(w, &b.bl, curlen)
				count--
			}
			b.sendCode(w, &b.bl, rep3to6)
			w.PutBits(uint32(count-3), 2)
		} else if count <= 10 {
			b.sendCode(w, &b.bl, repZ3to10)
			w.PutBits(uint32(count-3), 3)
		} else {
			b.sendCode(w, &b.bl, repZ11to138)
			w.PutBits(uint32(count-11), 7)
		}
		count = 0
		prevlen = curlen
		if nextlen == 0 {
			maxCount, minCount = 138, 3
		} else if curlen == nextlen {
			maxCount, minCount = 6, 3
		} else {
			maxCount, minCount = 7, 4
		}
	}
}

// buildBLTree builds the bit-length tree and returns the index in blOrder
// of the last bit-length code to send.
func (b *Block) buildBLTree() int {
	b.scanTree(&b.l, b.l.maxCode)
	b.scanTree(&b.d, b.d.maxCode)
	b.buildTree(&b.bl)
	maxBLIndex := blCodes - 1
	for ; maxBLIndex >= 3; maxBLIndex-- {
		if b.bl.len[blOrder[maxBLIndex]] != 0 {
			break
		}
	}
	b.optLen += 3*(int64(maxBLIndex)+1) + 5 + 5 + 4
	return maxBLIndex
}

// compressBlock sends the block's symbols and the end-of-block code with
// the given literal/length and distance codes.
func (b *Block) compressBlock(w *BitWriter, lcode, llen, dcode, dlen []uint16) {
	for _, s := range b.syms {
		dist := s >> 8
		lc := s & 0xff
		if dist == 0 {
			w.PutBits(uint32(lcode[lc]), uint(llen[lc]))
			continue
		}
		code := uint32(tables.lengthCode[lc])
		w.PutBits(uint32(lcode[code+literals+1]), uint(llen[code+literals+1]))
		if extra := uint(extraLBits[code]); extra != 0 {
			w.PutBits(lc-uint32(tables.baseLength[code]), extra)
		}
		dist--
		dc := uint32(dCode(dist))
		w.PutBits(uint32(dcode[dc]), uint(dlen[dc]))
		if extra := uint(extraDBits[dc]); extra != 0 {
			w.PutBits(dist-uint32(tables.baseDist[dc]), extra)
		}
	}
	w.PutBits(uint32(lcode[endBlock]), uint(llen[endBlock]))
}

// Block types in the 2-bit BTYPE field.
const (
	storedBlock = 0
	staticTrees = 1
	dynTrees    = 2
)

// StoredBlock writes a stored block of data (zlib's _tr_stored_block): the
// 3-bit header, padding to a byte boundary, LEN, NLEN, the bytes. Like the
// originals it writes the length modulo 65536.
func StoredBlock(w *BitWriter, data []byte, last bool) {
	w.PutBits(storedBlock<<1|b2u(last), 3)
	w.Windup()
	n := uint32(len(data)) & 0xffff
	w.PutBits(n, 16)
	w.PutBits(^n&0xffff, 16)
	w.PutBytes(data)
}

// EmptyStaticBlock writes an empty block with fixed codes, not last (10
// bits: zlib's _tr_align, and the marker pigz adds with deflatePrime).
func EmptyStaticBlock(w *BitWriter) {
	w.PutBits(staticTrees<<1, 3)
	w.PutBits(uint32(tables.staticLCode[endBlock]), uint(tables.staticLLen[endBlock]))
}

func b2u(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

// Flush writes the block with the cheapest encoding and empties it. stored
// holds the block's input bytes, or is nil when they are no longer in the
// window (then a stored block is impossible); storedLen is the number of
// input bytes the block covers. The choice is zlib's _tr_flush_block at
// levels 1..9 and GNU gzip's flush_block (whose stored-file shortcut needs
// a seekable output, which gzip never has): a stored block if its bytes
// plus 4 are no more than the compressed size in bytes, else fixed codes
// if they are no larger than dynamic ones, else dynamic codes.
func (b *Block) Flush(w *BitWriter, stored []byte, storedLen int64, last bool) {
	b.buildTree(&b.l)
	b.buildTree(&b.d)
	maxBLIndex := b.buildBLTree()

	optLenB := (b.optLen + 3 + 7) >> 3
	staticLenB := (b.staticLen + 3 + 7) >> 3
	if staticLenB <= optLenB {
		optLenB = staticLenB
	}
	switch {
	case storedLen+4 <= optLenB && stored != nil:
		StoredBlock(w, stored, last)
	case staticLenB == optLenB:
		w.PutBits(staticTrees<<1|b2u(last), 3)
		b.compressBlock(w, tables.staticLCode[:], tables.staticLLen[:], tables.staticDCode[:], tables.staticDLen[:])
	default:
		w.PutBits(dynTrees<<1|b2u(last), 3)
		b.sendAllTrees(w, b.l.maxCode+1, b.d.maxCode+1, maxBLIndex+1)
		b.compressBlock(w, b.l.code, b.l.len, b.d.code, b.d.len)
	}
	b.Reset()
	if last {
		w.Windup()
	}
}

// sendAllTrees sends the dynamic block header: the code counts, the
// bit-length code lengths, then the literal/length and distance code
// lengths.
func (b *Block) sendAllTrees(w *BitWriter, lcodes, dcodes, blcodes int) {
	w.PutBits(uint32(lcodes-257), 5)
	w.PutBits(uint32(dcodes-1), 5)
	w.PutBits(uint32(blcodes-4), 4)
	for rank := 0; rank < blcodes; rank++ {
		w.PutBits(uint32(b.bl.len[blOrder[rank]]), 3)
	}
	b.sendTree(w, &b.l, lcodes-1)
	b.sendTree(w, &b.d, dcodes-1)
}
