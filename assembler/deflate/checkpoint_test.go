package deflate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// record encodes data with checkpoints every spacing bytes, checks the
// stream against compress/flate and returns it with its segments.
func record(t *testing.T, level int, data []byte, p plan, spacing int64) ([]byte, []Checkpoint) {
	t.Helper()
	var cps []Checkpoint
	out := ownEncode(t, level, data, p, Options{CheckpointSpacing: spacing, OnCheckpoint: func(c Checkpoint) error {
		cps = append(cps, c)
		return nil
	}})
	checkSame(t, "recording encode", out, stdEncode(t, level, data, p))
	if err := checkCover(cps, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if last := cps[len(cps)-1]; last.EndBit != int64(len(out))*8 {
		t.Fatalf("last segment ends at bit %d, stream has %d", last.EndBit, len(out)*8)
	}
	return out, cps
}

// roundTrip returns cps after MarshalBinary and UnmarshalBinary, checking
// they come back equal.
func roundTrip(t *testing.T, cps []Checkpoint) []Checkpoint {
	t.Helper()
	var back []Checkpoint
	for _, cp := range cps {
		b, err := cp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var x Checkpoint
		if err := x.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normal(x), normal(cp)) {
			t.Fatalf("checkpoint changed in MarshalBinary/UnmarshalBinary:\n%+v\n%+v", x, cp)
		}
		back = append(back, x)
	}
	return back
}

// normal makes empty and nil lists compare equal.
func normal(c Checkpoint) Checkpoint {
	if len(c.st.runs) == 0 {
		c.st.runs = nil
	}
	if len(c.ev.flushes) == 0 {
		c.ev.flushes = nil
	}
	if len(c.ev.slides) == 0 {
		c.ev.slides = nil
	}
	if len(c.ev.matches) == 0 {
		c.ev.matches = nil
	}
	return c
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// resumeAll encodes every segment on its own, from a streamed input read
// one byte per call for every third segment, and splices them.
func resumeAll(t *testing.T, data []byte, cps []Checkpoint) []byte {
	t.Helper()
	var pieces []Piece
	for i, cp := range cps {
		var b bytes.Buffer
		hist := data[cp.In-cp.HistoryLen() : cp.In]
		in := &countingReader{r: bytes.NewReader(data[cp.In:])}
		var r io.Reader = in
		if i%3 == 2 {
			r = iotest.OneByteReader(in)
		}
		if err := ResumeSegment(&b, cp, hist, r); err != nil {
			t.Fatalf("segment %d [%d,%d): %v", i, cp.In, cp.End, err)
		}
		if max := cp.End - cp.In + Lookahead; in.n > max {
			t.Fatalf("segment %d [%d,%d) read %d input bytes, at most %d allowed", i, cp.In, cp.End, in.n, max)
		}
		if cp.Final && in.n != cp.End-cp.In {
			t.Fatalf("final segment read %d input bytes, has %d", in.n, cp.End-cp.In)
		}
		if want := segBytes(cp.Bit, cp.EndBit); int64(b.Len()) != want {
			t.Fatalf("segment %d: %d bytes, want %d", i, b.Len(), want)
		}
		pieces = append(pieces, Piece{cp.Bit, cp.EndBit, b.Bytes()})
	}
	out, err := Splice(pieces)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type stats struct{ flushes, slides, matches, runs int }

func countState(cps []Checkpoint) (s stats) {
	for _, c := range cps {
		s.flushes += len(c.ev.flushes)
		s.slides += len(c.ev.slides)
		s.matches += len(c.ev.matches)
		s.runs += len(c.st.runs)
	}
	return s
}

// Every level, real and synthetic input, input in one piece, in small
// pieces (slides earlier than a full window's) and with flushes: every
// segment re-encoded on its own, spliced, equals the stream, also from
// checkpoints that went through MarshalBinary, and EncodeParallel gives the
// same stream with 1, 2 and 4 workers.
func TestCheckpointResume(t *testing.T) {
	tarData := textTar()
	synth := cat(text(300<<10, 50), random(40000, 51), text(200<<10, 52), make([]byte, 100000), text(100<<10, 53))
	spacing := func(n int64) int64 { return n }
	if raceEnabled {
		// Fewer bytes: a checkpoint at every block boundary.
		tarData = tarData[:min(len(tarData), 200<<10)]
		synth = synth[:200<<10]
		spacing = func(int64) int64 { return 1 }
	}
	cases := []struct {
		name    string
		data    []byte
		p       plan
		spacing int64
	}{
		{"tar", tarData, plan{}, spacing(64 << 10)},
		{"tar-small-writes", tarData, plan{writes: []int{1, 13, 700, 9}}, spacing(100 << 10)},
		{"tar-early-slides", tarData, earlySlides, spacing(100 << 10)},
		{"synthetic-flushes", synth, plan{writes: []int{5000}, flushes: []int64{1000, 150000, 150001, 300000}}, 1},
	}
	for _, l := range levels {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("level%d/%s", l, tc.name), func(t *testing.T) {
				want, cps := record(t, l, tc.data, tc.p, tc.spacing)
				if len(cps) < 2 {
					t.Fatalf("only %d segments", len(cps))
				}
				st := countState(cps)
				t.Logf("%d segments, %+v", len(cps), st)
				if len(tc.p.flushes) > 0 && st.flushes == 0 {
					t.Fatal("no flush recorded")
				}
				checkSame(t, "spliced segments", resumeAll(t, tc.data, roundTrip(t, cps)), want)
				workers := []int{1, 2, 4}
				if raceEnabled && tc.name != "tar" {
					workers = []int{2}
				}
				for _, n := range workers {
					var b bytes.Buffer
					if err := EncodeParallel(context.Background(), &b, bytes.NewReader(tc.data), int64(len(tc.data)), cps, n); err != nil {
						t.Fatalf("%d workers: %v", n, err)
					}
					checkSame(t, fmt.Sprintf("EncodeParallel, %d workers", n), b.Bytes(), want)
				}
			})
		}
	}
}

// earlySlides feeds input so that every window fill ends one byte short of
// the window: where the encoder stops right at the slide threshold, the
// window slides one position earlier than with the window full.
var earlySlides = plan{writes: append([]int{65535}, bytesRepeat(32768, 400)...)}

func bytesRepeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// The test inputs must reach every kind of checkpoint state, or the test
// above proves less than it claims.
func TestCheckpointStateKinds(t *testing.T) {
	data := textTar()[:min(len(textTar()), raceCut(400<<10))]
	_, cps := record(t, 6, data, earlySlides, 100<<10)
	if countState(cps).slides == 0 {
		t.Error("level 6, writes ending at 65535 of the window: no early window slide recorded")
	}
	_, cps = record(t, 6, data, plan{}, 100<<10)
	if st := countState(cps); st != (stats{}) {
		t.Errorf("level 6, one write: state %+v, want none", st)
	}
	_, cps = record(t, 2, data, plan{}, 100<<10)
	if countState(cps).runs == 0 {
		t.Error("level 2: no unhashed runs recorded")
	}
	_, cps = record(t, 1, data, plan{}, 100<<10)
	if countState(cps).matches == 0 {
		t.Error("level 1: no matches into the previous segment recorded")
	}
}

func TestCheckpointShortStreams(t *testing.T) {
	for _, data := range [][]byte{nil, {1}, text(1000, 60)} {
		for _, l := range levels {
			want, cps := record(t, l, data, plan{}, 1)
			if len(cps) != 1 || !cps[0].Final {
				t.Fatalf("level %d, %d bytes: %d segments", l, len(data), len(cps))
			}
			checkSame(t, "resumed", resumeAll(t, data, cps), want)
		}
	}
}

func TestCheckpointUnmarshalRejects(t *testing.T) {
	_, cps := record(t, 1, text(300<<10, 61), plan{}, 1)
	b, err := cps[1].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var x Checkpoint
	for n := range len(b) {
		if err := x.UnmarshalBinary(b[:n]); err == nil {
			t.Errorf("truncated to %d of %d bytes: accepted", n, len(b))
		}
	}
	if err := x.UnmarshalBinary(append(b, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	v := bytes.Clone(b)
	v[0] = 2
	if err := x.UnmarshalBinary(v); err == nil {
		t.Error("version 2 accepted")
	}
	v = bytes.Clone(b)
	v[1] = 12
	if err := x.UnmarshalBinary(v); err == nil {
		t.Error("level 10 accepted")
	}
	// A checkpoint for one level refused by another's state rules.
	lazyCp := Checkpoint{Level: 6, In: 100, End: 200, EndBit: 8, st: engineState{phase: 100, hist: 100, runs: []run{{-10, -5}}}}
	if _, err := lazyCp.MarshalBinary(); err != nil {
		t.Fatalf("valid checkpoint refused: %v", err)
	}
	lazyCp.st.hist = 101
	if _, err := lazyCp.MarshalBinary(); err == nil {
		t.Error("history beyond the input start accepted")
	}
	lazyCp.st.hist = 100
	lazyCp.ev.matches = []forcedMatch{{1, 1}}
	if _, err := lazyCp.MarshalBinary(); err == nil {
		t.Error("level-1 match event at level 6 accepted")
	}
}

// A segment encoded from other input than its checkpoint's fails.
func TestResumeMismatch(t *testing.T) {
	data := text(300<<10, 62)
	for _, l := range levels {
		if l == NoCompression {
			continue // stored blocks have the same length whatever they hold
		}
		_, cps := record(t, l, data, plan{}, 100<<10)
		last := cps[len(cps)-1]
		// The same history and start, other bytes from 10000 in.
		other := cat(data[:last.In+10000], random(int(int64(len(data))-last.In-10000), 63))
		err := EncodeSegment(io.Discard, bytes.NewReader(other), int64(len(other)), last)
		if !errors.Is(err, ErrMismatch) {
			t.Errorf("level %d: segment [%d,%d) of other input: %v, want ErrMismatch", l, last.In, last.End, err)
		}
	}
	_, cps := record(t, 6, data, plan{}, 150<<10)
	if err := EncodeSegment(io.Discard, bytes.NewReader(data[:250<<10]), 250<<10, cps[len(cps)-1]); err == nil {
		t.Error("segment past the input's end accepted")
	}
	if err := ResumeSegment(io.Discard, cps[1], make([]byte, 5), bytes.NewReader(data)); err == nil {
		t.Error("history of the wrong length accepted")
	}
}

var errDiskFull = errors.New("disk full")

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errDiskFull
	}
	return len(p), nil
}

func TestEncodeParallelErrors(t *testing.T) {
	data := text(400<<10, 64)
	_, cps := record(t, 6, data, plan{}, 64<<10)
	src := bytes.NewReader(data)
	size := int64(len(data))
	bad := map[string][]Checkpoint{
		"none":        nil,
		"gap":         append(append([]Checkpoint{}, cps[:2]...), cps[3:]...),
		"no-final":    cps[:len(cps)-1],
		"mixed-level": append(append([]Checkpoint{}, cps[:len(cps)-1]...), Checkpoint{Level: 5, In: cps[len(cps)-1].In, Bit: cps[len(cps)-1].Bit, Final: true, End: size}),
	}
	for name, c := range bad {
		if err := EncodeParallel(context.Background(), io.Discard, src, size, c, 2); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := EncodeParallel(context.Background(), io.Discard, src, size+1, cps, 2); err == nil {
		t.Error("wrong size accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := EncodeParallel(ctx, io.Discard, src, size, cps, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if err := EncodeParallel(context.Background(), &failWriter{after: 10 << 10}, src, size, cps, 3); !errors.Is(err, errDiskFull) {
		t.Errorf("failing writer: %v", err)
	}
}

func TestSpliceRejects(t *testing.T) {
	if _, err := Splice([]Piece{{Bit: 0, EndBit: 12, Data: []byte{1}}}); err == nil {
		t.Error("piece shorter than its bits accepted")
	}
	if _, err := Splice([]Piece{{Bit: 0, EndBit: 8, Data: []byte{1}}, {Bit: 9, EndBit: 16, Data: []byte{2}}}); err == nil {
		t.Error("gap between pieces accepted")
	}
	got, err := Splice([]Piece{{0, 3, []byte{0b101}}, {3, 12, []byte{0b1000, 0b1111}}, {12, 16, []byte{0b10000}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0b1101, 0b11111}; !bytes.Equal(got, want) {
		t.Errorf("spliced %08b, want %08b", got, want)
	}
}

// compress/flate's output does depend on how input arrives: here the only
// match of position 65274 lies 32674 bytes back, before the window's
// start once the window has slid, and input arriving one byte short of a
// full window makes it slide before that position instead of after. The
// encoder must follow, and so must a segment resumed across that slide.
func TestWritePatternChangesOutput(t *testing.T) {
	data := random(200000, 70)
	copy(data[65274:65274+40], data[32600:])
	for _, l := range []int{2, 6, 9} {
		whole, _ := record(t, l, data, plan{}, 1)
		early, cps := record(t, l, data, earlySlides, 1)
		if bytes.Equal(whole, early) {
			t.Fatalf("level %d: the early slide changed nothing; the test input is wrong", l)
		}
		if countState(cps).slides == 0 {
			t.Fatalf("level %d: no slide recorded", l)
		}
		checkSame(t, "resumed", resumeAll(t, data, cps), early)
	}
}

// A corrupted checkpoint that still decodes makes encoding fail or write
// wrong bytes, never panic or hang.
func TestResumeCorruptCheckpoints(t *testing.T) {
	data := text(200<<10, 65)
	for _, l := range []int{1, 2, 6} {
		_, cps := record(t, l, data, plan{}, 64<<10)
		cp := cps[1]
		b, err := cp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for i := range min(len(b), 24) {
			for _, x := range []byte{0x01, 0x80} {
				v := bytes.Clone(b)
				v[i] ^= x
				var c Checkpoint
				if c.UnmarshalBinary(v) != nil {
					continue
				}
				EncodeSegment(io.Discard, bytes.NewReader(data), int64(len(data)), c)
			}
		}
		bogus := cp
		bogus.ev.slides = []int64{10}
		if l >= 2 {
			if err := EncodeSegment(io.Discard, bytes.NewReader(data), int64(len(data)), bogus); !errors.Is(err, ErrMismatch) {
				t.Errorf("level %d: slide recorded mid-window: %v, want ErrMismatch", l, err)
			}
		}
	}
}
