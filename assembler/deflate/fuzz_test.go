package deflate

import (
	"bytes"
	"testing"
)

// Each fuzz target compares the encoder with compress/flate for one
// family of levels, on the input repeated 1+rep%8 times, at most 256 KiB
// (long inputs and
// far matches from short ones), written in pieces of chunk bytes (0: one
// Write) with a Flush after flushAt bytes (0: none); then re-encodes every
// segment from checkpoints recorded at every block boundary and splices
// them. Run one with e.g. go test -fuzz FuzzHashChain -fuzztime 5m.

func fuzzLevel(t *testing.T, level int, data []byte, chunk uint16, flushAt uint32, rep uint8) {
	data = bytes.Repeat(data, 1+int(rep%8))
	data = data[:min(len(data), 256<<10)] // level 9 on low-entropy data is slow
	var p plan
	if chunk > 0 {
		p.writes = []int{int(chunk)}
	}
	if flushAt > 0 && int(flushAt) <= len(data) {
		p.flushes = []int64{int64(flushAt)}
	}
	// record checks the recording encode against compress/flate.
	want, cps := record(t, level, data, p, 1)
	checkSame(t, "encode without checkpoints", ownEncode(t, level, data, p, Options{}), want)
	checkSame(t, "spliced segments", resumeAll(t, data, cps), want)
}

func addSeeds(f *testing.F) {
	f.Add([]byte("hello, hello, hello world"), uint16(0), uint32(0), uint8(0))
	f.Add(text(3000, 80), uint16(7), uint32(1000), uint8(40))
}

// FuzzStored covers levels 0 (stored blocks) and -2 (Huffman only).
func FuzzStored(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, flushAt uint32, rep uint8) {
		fuzzLevel(t, NoCompression, data, chunk, flushAt, rep)
		fuzzLevel(t, HuffmanOnly, data, chunk, flushAt, rep)
	})
}

// FuzzBestSpeed covers level 1.
func FuzzBestSpeed(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, flushAt uint32, rep uint8) {
		fuzzLevel(t, BestSpeed, data, chunk, flushAt, rep)
	})
}

// FuzzHashChain covers levels 2..9 (level 2+level%8).
func FuzzHashChain(f *testing.F) {
	f.Add([]byte("hello, hello, hello world"), uint8(4), uint16(0), uint32(0), uint8(0))
	f.Add(text(3000, 81), uint8(0), uint16(300), uint32(2000), uint8(50))
	f.Fuzz(func(t *testing.T, data []byte, level uint8, chunk uint16, flushAt uint32, rep uint8) {
		fuzzLevel(t, 2+int(level%8), data, chunk, flushAt, rep)
	})
}
