package deflate

import (
	"encoding/binary"
	"io"
)

// bitWriter writes a deflate bit stream LSB first. It counts bits from the
// start of the whole stream, so an encoder resumed mid-stream starts with
// the phase (its start bit modulo 8) already pending as zero bits: its first
// byte then holds only its own bits, for the splice to OR in.
type bitWriter struct {
	w     io.Writer
	acc   uint64 // pending bits, LSB first
	nacc  uint   // number of pending bits (< 48 between calls)
	buf   []byte // whole bytes not yet written to w
	start int64  // stream bit offset of the first bit this writer emitted, rounded down to a byte
	out   int64  // bytes handed to w
	err   error
}

const bitBufSize = 16 << 10

// newBitWriter returns a bit writer whose output buffer is buf (empty,
// with a capacity of at least bitBufSize+64).
func newBitWriter(w io.Writer, startBit int64, buf []byte) *bitWriter {
	return &bitWriter{
		w:     w,
		nacc:  uint(startBit & 7),
		start: startBit &^ 7,
		buf:   buf,
	}
}

// pos is the stream bit offset of the next bit.
func (b *bitWriter) pos() int64 {
	return b.start + (b.out+int64(len(b.buf)))*8 + int64(b.nacc)
}

// put appends the low n bits of v (n <= 16 + 13 is enough for any call).
func (b *bitWriter) put(v uint64, n uint) {
	b.acc |= v << b.nacc
	b.nacc += n
	if b.nacc >= 48 {
		b.buf = binary.LittleEndian.AppendUint64(b.buf, b.acc)[:len(b.buf)+6]
		b.acc >>= 48
		b.nacc -= 48
		if len(b.buf) >= bitBufSize {
			b.drain()
		}
	}
}

func (b *bitWriter) putCode(c hcode) { b.put(uint64(c.code), uint(c.len)) }

// align pads with zero bits to the next byte boundary of the stream and
// moves all pending whole bytes to buf.
func (b *bitWriter) align() {
	for b.nacc > 0 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
		if b.nacc >= 8 {
			b.nacc -= 8
		} else {
			b.nacc = 0
		}
	}
	b.acc = 0
	if len(b.buf) >= bitBufSize {
		b.drain()
	}
}

// putBytes writes p at a byte boundary (the caller aligned first).
func (b *bitWriter) putBytes(p []byte) {
	if b.nacc&7 != 0 {
		panic("deflate: putBytes at an unaligned bit offset")
	}
	for ; b.nacc > 0; b.nacc -= 8 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
	}
	if len(b.buf)+len(p) <= bitBufSize {
		b.buf = append(b.buf, p...)
		return
	}
	b.drain()
	b.write(p)
}

// drain hands buf to w.
func (b *bitWriter) drain() {
	if len(b.buf) > 0 {
		b.write(b.buf)
		b.buf = b.buf[:0]
	}
}

func (b *bitWriter) write(p []byte) {
	if b.err != nil {
		return
	}
	n, err := b.w.Write(p)
	b.out += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	b.err = err
}

// finish writes everything pending, the last partial byte included (its
// unused high bits zero), and returns the first error of w. pos is not
// meaningful afterwards.
func (b *bitWriter) finish() error {
	for b.nacc > 0 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
		b.nacc -= min(b.nacc, 8)
	}
	b.drain()
	return b.err
}
