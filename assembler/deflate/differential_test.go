package deflate

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// The plans every input is fed with. compress/flate's output depends on
// how input arrives only through its window slides and flushes, and the
// encoder must follow it for any sequence of calls.
func plans(n int) []plan {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	randomSizes := make([]int, 64)
	for i := range randomSizes {
		randomSizes[i] = 1 + r.IntN(5000)
	}
	ps := []plan{
		{},
		{writes: []int{65535}},
		{writes: []int{65537}},
		{writes: []int{32 << 10}},
		{writes: []int{512, 100, 4096, 3}},
		{writes: randomSizes},
	}
	if raceEnabled {
		ps = []plan{ps[0], ps[5]}
	}
	if n <= 100<<10 && (!raceEnabled || n <= 70000) {
		ps = append(ps, plan{writes: []int{1}})
	}
	return ps
}

func planName(p plan) string {
	switch {
	case p.writes == nil && p.flushes == nil:
		return "one-write"
	case len(p.writes) > 8:
		return "random-writes"
	}
	return fmt.Sprintf("writes%v-flushes%v", p.writes, p.flushes)
}

func TestDifferentialEdgeCases(t *testing.T) {
	for _, in := range edgeInputs() {
		for _, l := range levels {
			ps := plans(len(in.data))
			if raceEnabled && l != 1 && l != 6 {
				ps = ps[:1]
			}
			for _, p := range ps {
				t.Run(fmt.Sprintf("%s/level%d/%s", in.name, l, planName(p)), func(t *testing.T) {
					checkSame(t, "encode", ownEncode(t, l, in.data, p, Options{}), stdEncode(t, l, in.data, p))
				})
			}
		}
	}
}

func TestDifferentialRealTars(t *testing.T) {
	for i, in := range realInputs() {
		for _, l := range levels {
			ps := []plan{{}, {writes: []int{512, 100, 4096, 3}}}
			switch {
			case (l == 1 || l == 6) && (!raceEnabled || i == 0):
				ps = plans(len(in.data))
				ps = ps[:min(len(ps), 6)]
			case raceEnabled && i > 0 && l != 1 && l != 6:
				continue // the race detector slows encoding tenfold
			case raceEnabled:
				ps = ps[:1]
			}
			for _, p := range ps {
				t.Run(fmt.Sprintf("%s/level%d/%s", in.name, l, planName(p)), func(t *testing.T) {
					checkSame(t, "encode", ownEncode(t, l, in.data, p, Options{}), stdEncode(t, l, in.data, p))
				})
			}
		}
	}
}

// Flushes at random offsets, in runs, at the start and at the end.
func TestDifferentialFlush(t *testing.T) {
	data := text(400<<10, 20)
	if raceEnabled {
		data = data[:100<<10]
	}
	r := rand.New(rand.NewPCG(5, 5))
	var random []int64
	for i := 0; i < 40; i++ {
		random = append(random, int64(r.IntN(len(data))))
	}
	slicesSort(random)
	flushPlans := []plan{
		{flushes: []int64{0}},
		{flushes: []int64{1, 2, 3}},
		{flushes: []int64{65535, 65536, 65537}},
		{flushes: []int64{int64(len(data))}},
		{flushes: random},
		{writes: []int{777}, flushes: random},
		{writes: []int{1 << 16}, flushes: []int64{100, 70000, 70003, 131070, 140000}},
	}
	for _, l := range levels {
		for _, p := range flushPlans {
			t.Run(fmt.Sprintf("level%d/%s", l, planName(p)), func(t *testing.T) {
				checkSame(t, "encode", ownEncode(t, l, data, p, Options{}), stdEncode(t, l, data, p))
			})
		}
	}
}

// Past 1<<24 input bytes compress/flate rebases its hash chain positions;
// the text right before and after the rebase must come out the same.
func TestDifferentialHashOffsetRebase(t *testing.T) {
	const at = 513 * winSize // the slide after which compress/flate rebases
	// Cheap to encode up to just before the rebase, text across it.
	cycle := text(1000, 30)
	data := bytes.Repeat(cycle, (at-(300<<10))/len(cycle))
	data = append(data, text(600<<10, 31)...)
	lv := []int{2, 3, 4, 5, 6, 7, 8, 9}
	if raceEnabled {
		lv = []int{2, 6}
	}
	for _, l := range lv {
		t.Run(fmt.Sprint("level", l), func(t *testing.T) {
			checkSame(t, "encode", ownEncode(t, l, data, plan{}, Options{}), stdEncode(t, l, data, plan{}))
		})
	}
}

// This encoder rebases its own positions at other points than
// compress/flate (level 1: forced here at every block; levels 2..9: at
// every slide, always); moving them must not change a single bit.
func TestOwnRebase(t *testing.T) {
	data := text(512<<10, 40)
	for _, l := range levels[2:] {
		t.Run(fmt.Sprint("level", l), func(t *testing.T) {
			var b bytes.Buffer
			w, err := NewWriter(&b, l)
			if err != nil {
				t.Fatal(err)
			}
			rebases := 0
			switch e := w.c.eng.(type) {
			case *lazyEngine:
				rebases = len(data)/winSize - 1 // every slide
			case *fastEngine:
				e.rebaseAt = maxStored + 1 // at every block
				rebases = len(data)/maxStored - 1
			}
			if rebases < 5 {
				t.Fatalf("only %d rebases", rebases)
			}
			feed(t, w, data, plan{writes: []int{10000}, flushes: []int64{300000}})
			checkSame(t, "encode", b.Bytes(), stdEncode(t, l, data, plan{writes: []int{10000}, flushes: []int64{300000}}))
		})
	}
}

// gzipOf frames a raw deflate stream as compress/gzip's Writer does with
// a zero header (no name, no time, OS unknown).
func gzipOf(level int, raw, data []byte) []byte {
	hdr := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	switch level {
	case BestCompression:
		hdr[8] = 2
	case BestSpeed:
		hdr[8] = 4
	}
	out := append(hdr, raw...)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(data))
	return binary.LittleEndian.AppendUint32(out, uint32(len(data)))
}

// The raw stream in gzip framing equals compress/gzip's whole file:
// compress/gzip's Close emits nothing but the deflate stream's own end
// before its trailer.
func TestGzipFraming(t *testing.T) {
	data := textTar()[:min(len(textTar()), raceCut(700<<10)/2)]
	for _, l := range levels {
		t.Run(fmt.Sprint("level", l), func(t *testing.T) {
			var want bytes.Buffer
			zw, err := gzip.NewWriterLevel(&want, l)
			if err != nil {
				t.Fatal(err)
			}
			feed(t, zw, data, plan{writes: []int{32 << 10}})
			raw := ownEncode(t, l, data, plan{writes: []int{32 << 10}}, Options{})
			checkSame(t, "gzip", gzipOf(l, raw, data), want.Bytes())
		})
	}
}
