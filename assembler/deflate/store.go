package deflate

// storeEngine is level 0 (stored blocks) and level -2 (Huffman-only
// blocks): input is cut into blocks of 65535 bytes, or shorter at a flush
// or at the end, and nothing is carried from one block to the next.
type storeEngine struct {
	c       *coder
	huff    bool
	buf     []byte
	n       int   // bytes buffered
	blockIn int64 // input offset of buf[0]
}

func newStoreEngine(c *coder, huff bool, in int64) *storeEngine {
	return &storeEngine{c: c, huff: huff, buf: make([]byte, maxStored), blockIn: in}
}

func (e *storeEngine) fill(p []byte) int {
	k := copy(e.buf[e.n:], p)
	e.n += k
	return k
}

func (e *storeEngine) step(sync bool) {
	if e.n == 0 || (e.n < maxStored && !sync) {
		return
	}
	if e.huff {
		e.c.blk.writeHuffOnly(false, e.buf[:e.n])
	} else {
		e.c.blk.writeStored(e.buf[:e.n], false)
	}
	e.blockIn += int64(e.n)
	e.n = 0
	e.c.cut(e.blockIn, sync)
}

func (e *storeEngine) state(int64) engineState { return engineState{} }
