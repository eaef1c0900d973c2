package zhuff

// BitWriter accumulates a deflate bit stream, least significant bit first,
// the way zlib's and GNU gzip's send_bits do. Completed bytes collect in an
// internal buffer that the owner drains with Take; the writer counts every
// bit it was given, so Bits is the stream's bit offset.
//
// A writer may start at a bit offset that is not a multiple of 8 (a resumed
// segment): the first byte it completes then has its low bits zero, and the
// bits before belong to the previous segment's last byte.
type BitWriter struct {
	acc   uint64 // pending bits, LSB first
	nacc  uint   // number of pending bits in acc (< 32 between calls)
	buf   []byte // completed bytes not yet taken
	total uint64 // bit offset of the stream end
}

// Reset empties the writer and sets its bit offset to start.
func (w *BitWriter) Reset(start uint64) {
	w.acc = 0
	w.nacc = uint(start % 8)
	w.buf = w.buf[:0]
	w.total = start
}

// PutBits appends the n low bits of v (n <= 16 in deflate, at most 32 here).
func (w *BitWriter) PutBits(v uint32, n uint) {
	w.acc |= uint64(v) << w.nacc
	w.nacc += n
	w.total += uint64(n)
	if w.nacc >= 32 {
		a := w.acc
		w.buf = append(w.buf, byte(a), byte(a>>8), byte(a>>16), byte(a>>24))
		w.acc >>= 32
		w.nacc -= 32
	}
}

// flushBytes moves every complete pending byte to buf.
func (w *BitWriter) flushBytes() {
	for w.nacc >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

// Windup pads the stream with zero bits to a byte boundary (zlib's
// bi_windup).
func (w *BitWriter) Windup() {
	w.flushBytes()
	if w.nacc > 0 {
		w.buf = append(w.buf, byte(w.acc))
		w.total += uint64(8 - w.nacc)
	}
	w.acc = 0
	w.nacc = 0
}

// PutBytes appends whole bytes; the stream must be at a byte boundary.
func (w *BitWriter) PutBytes(p []byte) {
	if w.nacc != 0 {
		panic("zhuff: PutBytes off a byte boundary")
	}
	w.buf = append(w.buf, p...)
	w.total += uint64(len(p)) * 8
}

// Bits is the bit offset of the end of the stream.
func (w *BitWriter) Bits() uint64 { return w.total }

// PendingBits is the number of bits of the last, incomplete byte (what
// zlib's deflatePending reports after a flush).
func (w *BitWriter) PendingBits() uint { return uint(w.total % 8) }

// Buffered is the number of complete bytes waiting to be taken.
func (w *BitWriter) Buffered() int {
	return len(w.buf) + int(w.nacc/8)
}

// Take returns the complete bytes written so far and forgets them. The
// slice is valid until the next call on the writer.
func (w *BitWriter) Take() []byte {
	w.flushBytes()
	b := w.buf
	w.buf = w.buf[:0]
	return b
}

// Tail returns the incomplete last byte and how many of its bits are set
// (0..7). Call Take first to collect the complete bytes.
func (w *BitWriter) Tail() (byte, uint) {
	w.flushBytes()
	return byte(w.acc), w.nacc
}
