package codec

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkZstdReplay measures the one way klauspost's zstd output could
// be encoded in segments with the library as it is: a segment starting at
// a block boundary B is encoded by a fresh encoder that is first fed the
// R bytes before B (the replay; its output is dropped), then the
// segment's input, then Flush. The encoder carries its hash tables, its
// history and its parse from block to block (bench/cold-pull.md), so the
// segment comes out as in the whole encode only once the replay has
// rebuilt all of that. For 16 MiB segments it reports, per replay length,
// the share of segments that come out byte for byte as in the whole
// encode ("exact") and the time of all segments with their replays, one
// after the other on one goroutine, against one whole encode on one
// goroutine ("time-vs-encode"): the work a cold pull would do.
//
// The input is a generated 96 MiB tar, or the first 96 MiB of the tar file
// CHUNKYARD_BENCH_TAR names (e.g. one made with tar cf of /usr):
//
//	go test -run '^$' -bench ZstdReplay -benchtime 1x ./assembler/codec/
func BenchmarkZstdReplay(b *testing.B) {
	const size, seg = 96 << 20, 16 << 20
	raw := genTar(b, 7, size)
	if path := os.Getenv("CHUNKYARD_BENCH_TAR"); path != "" {
		f, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		raw = f[:min(len(f), size)]
	}
	for _, level := range []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		// One encoder, Reset for each stream (a new, independent one),
		// as a pull would keep them: a fresh encoder's first use pays for
		// its memory's page faults.
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		var whole bytes.Buffer
		encodeTime := time.Duration(math.MaxInt64)
		for range 2 {
			whole.Reset()
			e.Reset(&whole)
			c0 := time.Now()
			e.Write(raw)
			if err := e.Close(); err != nil {
				b.Fatal(err)
			}
			encodeTime = min(encodeTime, time.Since(c0))
		}
		fr, hdr, blocks := zstdBlocks(b, whole.Bytes())
		const blockSize = 128 << 10 // the stream encoder's, at these levels
		b.Logf("level %s: %d-byte tar, window %d, %d blocks of %d bytes, header %d bytes, encode %v",
			level, len(raw), fr.window, len(blocks), blockSize, hdr, encodeTime)
		// An input of whole blocks ends in an empty last block.
		if len(blocks) != len(raw)/blockSize+1 && len(blocks) != (len(raw)+blockSize-1)/blockSize {
			b.Fatalf("blocks are not of one size: %d blocks for %d bytes", len(blocks), len(raw))
		}
		for _, replay := range []int{0, 4 << 20, 8 << 20, 12 << 20, 16 << 20} {
			b.Run(fmt.Sprintf("%s/replay-%dMiB", level, replay>>20), func(b *testing.B) {
				var exact, segs int
				var took time.Duration
				var out bytes.Buffer
				for b.Loop() {
					exact, segs, took = 0, 0, 0
					for start := 0; start < len(raw); start += seg {
						end := min(start+seg, len(raw))
						from := max(0, start-replay)
						out.Reset()
						c0 := time.Now()
						e.Reset(&out)
						e.Write(raw[from:start])
						e.Flush()
						skip := out.Len()
						e.Write(raw[start:end])
						if end == len(raw) {
							err = e.Close()
						} else {
							err = e.Flush()
						}
						took += time.Since(c0)
						if err != nil {
							b.Fatal(err)
						}
						// The whole encode's bytes for blocks [start, end):
						// the header too for the first segment, the
						// checksum for the last (it covers all the input,
						// which the pull would hash itself).
						lo, hi := blocks[start/blockSize][0], blocks[(end-1)/blockSize][1]
						if end == len(raw) {
							hi = blocks[len(blocks)-1][1]
						}
						got := out.Bytes()[skip:]
						if start == 0 {
							lo = 0
						} else if skip == 0 {
							// nothing written before the segment (no
							// replay): the header comes before its blocks
							got = got[hdr:]
						}
						if end == len(raw) {
							got = got[:len(got)-4]
						}
						segs++
						if bytes.Equal(got, whole.Bytes()[lo:hi]) {
							exact++
						}
					}
				}
				b.ReportMetric(float64(exact)/float64(segs), "exact")
				b.ReportMetric(took.Seconds()/encodeTime.Seconds(), "time-vs-encode")
			})
		}
	}
}

// zstdBlocks returns a zstd frame's header as readZstdFrameHeader reads
// it, the header's length, and each block's [start, end) in the frame.
func zstdBlocks(tb testing.TB, frame []byte) (zstdFrame, int, [][2]int) {
	tb.Helper()
	r := bytes.NewReader(frame)
	br := bufio.NewReader(r)
	fr, err := readZstdFrameHeader(br)
	if err != nil {
		tb.Fatal(err)
	}
	p := len(frame) - r.Len() - br.Buffered()
	hdr := p
	var blocks [][2]int
	for p+3 <= len(frame) {
		h := int(frame[p]) | int(frame[p+1])<<8 | int(frame[p+2])<<16
		n := h >> 3
		if (h>>1)&3 == 1 { // RLE: one byte
			n = 1
		}
		blocks = append(blocks, [2]int{p, p + 3 + n})
		p += 3 + n
		if h&1 != 0 {
			return fr, hdr, blocks
		}
	}
	tb.Fatalf("zstd frame without a last block")
	return fr, 0, nil
}
