package gnu

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/ztestdata"
)

// wantGzip is the GNU gzip release this encoder reproduces.
const wantGzip = "1.12"

func tarLimit() int {
	if raceEnabled {
		return 256 << 10
	}
	return 6 << 20
}

var (
	inputsOnce sync.Once
	tars       []ztestdata.Input
	edges      []ztestdata.Input
	text       []byte // 1 MiB tar of Go's sources
)

func testInputs(t testing.TB) (real, edge []ztestdata.Input) {
	inputsOnce.Do(func() {
		tars = ztestdata.Tars(tarLimit())
		text = ztestdata.Tar(filepath.Join(runtime.GOROOT(), "src"), 1<<20)
		if len(tars) > 0 && len(text) >= 1<<20 {
			edges = ztestdata.Edges(text, raceEnabled)
		}
	})
	if len(edges) == 0 {
		t.Fatal("no real tar input: Go's sources are missing")
	}
	return tars, edges
}

var gzipVersion = regexp.MustCompile(`^gzip (\S+)`)

// checkGzip fails unless the gzip binary is the release reproduced here.
// gzip is part of every Debian system; its absence fails the test.
func checkGzip(t *testing.T) {
	t.Helper()
	out, err := exec.Command("gzip", "--version").Output()
	if err != nil {
		t.Fatalf("gzip binary: %v", err)
	}
	m := gzipVersion.FindSubmatch(out)
	if m == nil || string(m[1]) != wantGzip {
		t.Fatalf("gzip --version says %q; this encoder reproduces gzip %s", out, wantGzip)
	}
}

// gzipFile is the gzip binary's output for data: gzip -c -n -LEVEL with
// data on standard input (a pipe fed in writes of piece bytes, 0: at once).
func gzipFile(t testing.TB, data []byte, level, piece int) []byte {
	t.Helper()
	cmd := exec.Command("gzip", "-c", "-n", "-"+strconv.Itoa(level))
	if piece == 0 {
		cmd.Stdin = bytes.NewReader(data)
	} else {
		pr, pw := io.Pipe()
		cmd.Stdin = pr
		go func() {
			for i := 0; i < len(data); i += piece {
				pw.Write(data[i:min(len(data), i+piece)])
			}
			pw.Close()
		}()
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return out
}

// frame wraps a deflate body the way gzip -n does (no name, no time,
// XFL 4 for -1 and 2 for -9, OS 3) with its CRC-32 and size trailer.
func frame(body, data []byte, level int) []byte {
	xfl := byte(0)
	switch level {
	case 1:
		xfl = 4
	case 9:
		xfl = 2
	}
	out := append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3}, body...)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(data))
	return binary.LittleEndian.AppendUint32(out, uint32(len(data)))
}

func encode(t testing.TB, data []byte, level, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if chunk <= 0 {
		chunk = len(data) + 1
	}
	for i := 0; i < len(data); i += chunk {
		w.Write(data[i:min(len(data), i+chunk)])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestMatchesGzip compares whole gzip files (our body in gzip -n's frame)
// with the gzip binary's at every level, on real tars and edge cases.
func TestMatchesGzip(t *testing.T) {
	checkGzip(t)
	real, edge := testInputs(t)
	inputs := append(append([]ztestdata.Input(nil), real...), edge...)
	for level := 1; level <= 9; level++ {
		t.Run(strconv.Itoa(level), func(t *testing.T) {
			t.Parallel()
			for _, in := range inputs {
				want := gzipFile(t, in.Data, level, 0)
				body := encode(t, in.Data, level, 1000+len(in.Data)/3)
				got := frame(body, in.Data, level)
				if d := firstDiff(got, want); d >= 0 {
					t.Errorf("%s (%d bytes): differs from gzip at byte %d of %d (ours %d)", in.Name, len(in.Data), d, len(want), len(got))
					continue
				}
				inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(body)))
				if err != nil || !bytes.Equal(inflated, in.Data) {
					t.Errorf("%s: body does not inflate to the input (%v)", in.Name, err)
				}
			}
		})
	}
}

// TestPipe: gzip reading a pipe (as in tar | gzip) gets short reads; on
// real tars fed in tar's 10240-byte records it writes the same bytes as
// from a file, which is what the encoder reproduces.
func TestPipe(t *testing.T) {
	checkGzip(t)
	real, _ := testInputs(t)
	for _, in := range real {
		for _, level := range []int{1, 6, 9} {
			want := gzipFile(t, in.Data, level, 0)
			if got := gzipFile(t, in.Data, level, 10240); !bytes.Equal(got, want) {
				t.Errorf("%s level %d: gzip from a pipe wrote other bytes than from a file", in.Name, level)
			}
		}
	}
}

// TestBig runs 17 MiB (offsets past 1<<24) at levels 1 and 9.
func TestBig(t *testing.T) {
	checkGzip(t)
	real, _ := testInputs(t)
	big := ztestdata.Big(real[0].Data)
	levels := []int{1, 9}
	if raceEnabled {
		levels = levels[:1] // 17 MiB at level 9 takes minutes under the race detector
	}
	for _, level := range levels {
		want := gzipFile(t, big.Data, level, 0)
		if got := frame(encode(t, big.Data, level, 0), big.Data, level); !bytes.Equal(got, want) {
			t.Errorf("level %d: differs at byte %d", level, firstDiff(got, want))
		}
	}
}

// TestCheckpoints: encode with checkpoints at every level, re-encode the
// segments from their checkpoints (after Marshal/Unmarshal) and splice
// them by hand and with EncodeParallel on 1, 2 and 4 workers.
func TestCheckpoints(t *testing.T) {
	real, edge := testInputs(t)
	var data []byte
	for _, in := range real {
		data = append(data, in.Data[:min(len(in.Data), 1<<20)]...)
	}
	every := int64(128 << 10)
	for _, in := range edge {
		if in.Name == "repeat-40000" || in.Name == "lazy-end-89991" || !raceEnabled && (in.Name == "text-random-text" || in.Name == "zeros-1m") {
			data = append(data, in.Data...)
		}
	}
	if raceEnabled {
		every = 32 << 10
	}
	for level := 1; level <= 9; level++ {
		t.Run(strconv.Itoa(level), func(t *testing.T) {
			t.Parallel()
			var one bytes.Buffer
			w, _ := NewWriterOptions(&one, Options{Level: level, CheckpointEvery: every})
			w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if plain := encode(t, data, level, 0); !bytes.Equal(plain, one.Bytes()) {
				t.Fatal("recording checkpoints changes the output")
			}
			cps := w.Checkpoints()
			if len(cps) < 4 {
				t.Fatalf("only %d checkpoints in %d bytes", len(cps), len(data))
			}
			size := 0
			for i := range cps {
				b, err := cps[i].MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				size += len(b)
				var c Checkpoint
				if err := c.UnmarshalBinary(b); err != nil {
					t.Fatalf("checkpoint %d: %v", i, err)
				}
				cps[i] = c
			}
			t.Logf("%d checkpoints, %d bytes marshalled on average", len(cps), size/len(cps))
			var spliced bytes.Buffer
			sp := NewSplicer(&spliced)
			for k := 0; k <= len(cps); k++ {
				var seg bytes.Buffer
				var z *Writer
				from := int64(0)
				if k == 0 {
					z, _ = NewWriter(&seg, level)
					z.s.stop = cps[0].In
				} else {
					cp := &cps[k-1]
					var stop *Checkpoint
					if k < len(cps) {
						stop = &cps[k]
					}
					var err error
					if z, err = Resume(&seg, cp, data[cp.HistoryStart():cp.In], stop); err != nil {
						t.Fatal(err)
					}
					from = cp.In
				}
				end := int64(len(data))
				if k < len(cps) {
					// The exact data the original had read at the boundary.
					end = min(end, cps[k].In-int64(cps[k].Window)+int64(cps[k].DataEnd))
				}
				z.Write(data[from:end])
				if err := z.Close(); err != nil {
					t.Fatalf("segment %d: %v", k, err)
				}
				b, n := z.Tail()
				sp.Segment(seg.Bytes(), b, n)
			}
			sp.Close()
			if d := firstDiff(spliced.Bytes(), one.Bytes()); d >= 0 {
				t.Fatalf("spliced segments differ at byte %d", d)
			}
			for _, workers := range []int{1, 2, 4} {
				var par bytes.Buffer
				if err := EncodeParallel(context.Background(), &par, bytes.NewReader(data), int64(len(data)), level, cps, workers); err != nil {
					t.Fatalf("%d workers: %v", workers, err)
				}
				if d := firstDiff(par.Bytes(), one.Bytes()); d >= 0 {
					t.Fatalf("%d workers: differs at byte %d", workers, d)
				}
			}
		})
	}
}

// TestResumeNearEnd resumes from the last checkpoint of inputs whose end
// is decided by the bytes gzip's window held past the input
// (ztestdata.StaleTail), with the checkpoint inside the window's last,
// short fill: the resumed encoder must rebuild those bytes.
func TestResumeNearEnd(t *testing.T) {
	short := 0
	step := 4096
	if raceEnabled {
		step = 8192
	}
	for n := 300000; n < 300000+65536; n += step {
		data := ztestdata.StaleTail(n, int64(n))
		for _, level := range []int{6, 9} {
			var one bytes.Buffer
			w, _ := NewWriterOptions(&one, Options{Level: level, CheckpointEvery: 1})
			w.Write(data)
			w.Close()
			cps := w.Checkpoints()
			if len(cps) == 0 {
				t.Fatalf("no checkpoints")
			}
			last := cps[len(cps)-1]
			if last.DataEnd < windowSize {
				short++
			}
			var seg bytes.Buffer
			z, err := Resume(&seg, &last, data[last.HistoryStart():last.In], nil)
			if err != nil {
				t.Fatal(err)
			}
			z.Write(data[last.In:])
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			sp := NewSplicer(&out)
			head := one.Bytes()[:last.Out/8]
			tail := byte(0)
			if last.Out%8 != 0 {
				tail = one.Bytes()[last.Out/8] & (1<<(last.Out%8) - 1)
			}
			sp.Segment(append([]byte(nil), head...), tail, int(last.Out%8))
			sp.Segment(seg.Bytes(), 0, 0)
			sp.Close()
			if d := firstDiff(out.Bytes(), one.Bytes()); d >= 0 {
				t.Errorf("n %d level %d: resumed tail differs at byte %d", n, level, d)
			}
		}
	}
	if short == 0 {
		t.Fatal("no last checkpoint fell in the window's last, short fill: the test exercises nothing")
	}
	t.Logf("%d resumes from within the last window fill", short)
}

// TestResumeWrongInput: other input than the original's fails instead of
// splicing silently.
func TestResumeWrongInput(t *testing.T) {
	testInputs(t)
	data := append([]byte(nil), text...)
	var one bytes.Buffer
	w, _ := NewWriterOptions(&one, Options{Level: 9, CheckpointEvery: 32 << 10})
	w.Write(data)
	w.Close()
	cps := w.Checkpoints()
	if len(cps) < 3 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	other := append([]byte(nil), data...)
	rand.New(rand.NewSource(3)).Read(other[cps[0].In : cps[0].In+30000])
	err := EncodeParallel(context.Background(), io.Discard, bytes.NewReader(other), int64(len(other)), 9, cps, 2)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("other input: got %v, want ErrMismatch", err)
	}
	var c Checkpoint
	b, _ := cps[1].MarshalBinary()
	b[1] = 'z'
	if c.UnmarshalBinary(b) == nil {
		t.Fatal("a zlib checkpoint accepted by the gzip encoder")
	}
}
