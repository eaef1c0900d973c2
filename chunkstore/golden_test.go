package chunkstore

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/restic/chunker"
)

// goldenInput is deterministic: pseudo-random bytes, a run of zeros (the
// restic chunker cuts after 64 zero bytes past the minimum), and text.
func goldenInput(n int) []byte {
	var b []byte
	b = append(b, randomBytes(0x5eed, n/2)...)
	b = append(b, make([]byte, n/8)...)
	b = append(b, textBytes(0x7e47, n-len(b))...)
	return b
}

// TestGoldenChunkBoundaries pins the chunk lengths Write cuts for a fixed
// polynomial, sizes and input. If it fails, dedup against existing stores
// breaks: do not update the expected values unless that is intended.
func TestGoldenChunkBoundaries(t *testing.T) {
	tests := []struct {
		name                        string
		minChunk, maxChunk, avgBits int
		inputLen                    int
		want                        []uint32
	}{
		{
			name:     "defaults 128KiB-256KiB-2MiB",
			minChunk: DefaultMinChunk, maxChunk: DefaultMaxChunk, avgBits: DefaultAverageBits,
			inputLen: 6 << 20,
			want: []uint32{
				389582, 139791, 191908, 757296, 343151, 397332, 202969, 344366,
				138956, 240441, 131072, 131072, 131072, 131072, 131072, 488748,
				219576, 205468, 411749, 814545, 169050, 181168,
			},
		},
		{
			// The defaults before 2026-11-23: data dirs made then keep them.
			name:     "1MiB 512KiB-1MiB-8MiB",
			minChunk: 512 << 10, maxChunk: 8 << 20, avgBits: 20,
			inputLen: 24 << 20,
			want: []uint32{
				529373, 1689687, 547335, 1499377, 2087620, 958842, 1010383, 614771,
				1123732, 2521856, 524288, 524288, 524288, 524288, 524288, 881964,
				836793, 983595, 1780890, 539586, 800748, 1670477, 599046, 1868309,
			},
		},
		{
			name:     "small 4KiB-16KiB-64KiB",
			minChunk: 4 << 10, maxChunk: 64 << 10, avgBits: 14,
			inputLen: 1 << 20,
			want: []uint32{
				56202, 14284, 43224, 8332, 31117, 7315, 4794, 15859,
				14961, 29984, 11088, 18061, 32639, 34032, 22891, 12120,
				32679, 36573, 15214, 19320, 23134, 18145, 7567, 14817,
				4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
				4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
				4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096,
				4096, 4096, 4096, 4096, 4096, 4096, 4096, 7357,
				52864, 30293, 9399, 26509, 37591, 10583, 20362, 14630,
				14144, 11854, 33798, 16290, 16794, 5339, 17253, 29317,
				7395, 19960, 4691, 10825,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFixedConfig(t, dir, tt.minChunk, tt.maxChunk, tt.avgBits)
			opts := smallOpts(t, dir)
			opts.PackSize = 64 << 20
			s := openStore(t, opts)
			defer s.Close()
			if s.cfg.Polynomial != testPol {
				t.Fatalf("store uses polynomial %v, want the fixed %v", s.cfg.Polynomial, testPol)
			}
			chunks := mustWrite(t, s, goldenInput(tt.inputLen), nil)
			got := make([]uint32, len(chunks))
			for i, c := range chunks {
				got[i] = c.RawLen
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("chunk lengths changed:\n got %v\nwant %v", got, tt.want)
			}
			// The store cuts exactly as the bare chunker does.
			c := chunker.NewWithBoundaries(bytes.NewReader(goldenInput(tt.inputLen)), testPol, uint(tt.minChunk), uint(tt.maxChunk))
			c.SetAverageBits(tt.avgBits)
			var bare []uint32
			for {
				ch, err := c.Next(nil)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				bare = append(bare, uint32(ch.Length))
			}
			if !slices.Equal(bare, tt.want) {
				t.Errorf("bare chunker lengths:\n got %v\nwant %v", bare, tt.want)
			}
		})
	}
}
