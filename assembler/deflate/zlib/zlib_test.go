package zlib

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/chunkyard/chunkyard/assembler/deflate/internal/ztestdata"
)

// tarLimit is the size of each real tar the differential tests use.
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

// checkInflate proves the stream decodes to data (a second witness next
// to the byte comparison).
func checkInflate(t *testing.T, name string, stream, data []byte) {
	t.Helper()
	got, err := io.ReadAll(flate.NewReader(bytes.NewReader(stream)))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("%s: stream does not inflate to the input (err %v)", name, err)
	}
}

// TestMatchesZlib compares the encoder with real zlib (Python's, the
// system's libz) at every level on real tars and on the edge cases.
func TestMatchesZlib(t *testing.T) {
	o := getOracle(t)
	t.Logf("reference: zlib %s through python3", o.version)
	real, edge := testInputs(t)
	inputs := append(append([]ztestdata.Input(nil), real...), edge...)
	for level := 1; level <= 9; level++ {
		t.Run(strconv.Itoa(level), func(t *testing.T) {
			t.Parallel()
			for _, in := range inputs {
				want := o.deflate(t, in.Data, level, 0)
				got := encode(t, in.Data, level, 0)
				if d := firstDiff(got, want); d >= 0 {
					t.Errorf("%s (%d bytes): output differs from zlib at byte %d of %d (ours %d)", in.Name, len(in.Data), d, len(want), len(got))
					continue
				}
				checkInflate(t, in.Name, got, in.Data)
			}
		})
	}
}

// TestBig runs a 17 MiB input (input offsets past 1<<24) at levels 1 and 6.
func TestBig(t *testing.T) {
	o := getOracle(t)
	real, _ := testInputs(t)
	big := ztestdata.Big(real[0].Data)
	levels := []int{1, 6}
	if raceEnabled {
		levels = levels[:1] // 17 MiB at level 6 takes minutes under the race detector
	}
	for _, level := range levels {
		want := o.deflate(t, big.Data, level, 0)
		got := encode(t, big.Data, level, 0)
		if d := firstDiff(got, want); d >= 0 {
			t.Errorf("level %d: differs at byte %d", level, d)
		}
	}
}

// TestWriteSplits checks that how the input is split into Write calls
// does not change the output, and that zlib fed in common piece sizes
// gives the same bytes.
func TestWriteSplits(t *testing.T) {
	o := getOracle(t)
	testInputs(t)
	data := text
	if raceEnabled {
		data = text[:256<<10]
	}
	rnd := rand.New(rand.NewSource(2))
	for _, level := range []int{1, 4, 6, 9} {
		want := o.deflate(t, data, level, 0)
		for _, chunk := range []int{1, 7, 512, 10240, 65535, 65536, 100000} {
			if got := o.deflate(t, data, level, chunk); !bytes.Equal(got, want) {
				t.Errorf("level %d: zlib itself writes other bytes when fed %d-byte pieces", level, chunk)
			}
			if got := encode(t, data, level, chunk); !bytes.Equal(got, want) {
				t.Errorf("level %d: %d-byte writes change the output", level, chunk)
			}
		}
		// Random split points.
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, level)
		for rest := data; len(rest) > 0; {
			n := min(len(rest), rnd.Intn(70000))
			w.Write(rest[:n])
			rest = rest[n:]
		}
		w.Close()
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("level %d: random write splits change the output", level)
		}
	}
}

// TestSplitCorner pins the one case found where real zlib's output depends
// on how its input is split: a match exactly 32506 bytes back at window
// index 65274, which a window slide one step early (when a deflate() call
// ends there) makes unreachable. This encoder writes what zlib writes for
// the whole input at once.
func TestSplitCorner(t *testing.T) {
	o := getOracle(t)
	_, edge := testInputs(t)
	var data []byte
	for _, in := range edge {
		if in.Name == "maxdist-at-slide" {
			data = in.Data
		}
	}
	for _, level := range []int{1, 6} {
		whole := o.deflate(t, data, level, 0)
		split := o.deflate(t, data, level, 65535)
		if bytes.Equal(whole, split) {
			t.Errorf("level %d: zlib no longer depends on the split here; revisit the Writer's documentation", level)
		}
		if got := encode(t, data, level, 65535); !bytes.Equal(got, whole) {
			t.Errorf("level %d: output is not zlib's whole-input output", level)
		}
	}
}

// TestFlushes compares sync, full, partial and block flushes, a dictionary
// and deflatePrime with zlib driven the same way (through a C-free path:
// Python's zlib exposes compressobj(zdict=...) and flush(mode)).
func TestFlushes(t *testing.T) {
	getOracle(t)
	testInputs(t)
	data := text[:300000]
	dict := text[300000:340000]
	script := `
import sys, zlib
d = sys.stdin.buffer.read()
level = int(sys.argv[1]); n = len(d) - 40000
data, dic = d[:n], d[n:]
c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, dic)
out = [c.compress(data[:70000]), c.flush(zlib.Z_SYNC_FLUSH), c.flush(zlib.Z_SYNC_FLUSH),
       c.compress(data[70000:150000]), c.flush(zlib.Z_FULL_FLUSH),
       c.compress(data[150000:151000]), c.flush(zlib.Z_PARTIAL_FLUSH),
       c.compress(data[151000:200000]), c.flush(zlib.Z_BLOCK),
       c.compress(data[200000:]), c.flush()]
sys.stdout.buffer.write(b"".join(out))
`
	for _, level := range []int{1, 3, 4, 6, 9} {
		cmd := exec.Command("python3", "-c", script, strconv.Itoa(level))
		cmd.Stdin = bytes.NewReader(append(append([]byte(nil), data...), dict...))
		want, err := cmd.Output()
		if err != nil {
			t.Fatalf("python3: %v", err)
		}
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, level)
		steps := []func() error{
			func() error { return w.SetDictionary(dict) },
			func() error { _, err := w.Write(data[:70000]); return err },
			func() error { return w.FlushMode(SyncFlush) },
			func() error { return w.FlushMode(SyncFlush) },
			func() error { _, err := w.Write(data[70000:150000]); return err },
			func() error { return w.FlushMode(FullFlush) },
			func() error { _, err := w.Write(data[150000:151000]); return err },
			func() error { return w.FlushMode(PartialFlush) },
			func() error { _, err := w.Write(data[151000:200000]); return err },
			func() error { return w.FlushMode(BlockFlush) },
			func() error { _, err := w.Write(data[200000:]); return err },
			w.Close,
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("level %d step %d: %v", level, i, err)
			}
		}
		if d := firstDiff(buf.Bytes(), want); d >= 0 {
			t.Errorf("level %d: flushes and dictionary: differs at byte %d of %d", level, d, len(want))
		}
	}
}

// TestPigz compares EncodePigz with the pigz binary: parallel (-p 2 and
// -p 4), single-threaded (-p 1) and independent (-i) modes, levels 1, 6,
// 9 and others, on real tars and edge cases.
func TestPigz(t *testing.T) {
	if _, err := exec.LookPath("pigz"); err != nil {
		if os.Getenv("CHUNKYARD_REQUIRE_TOOLS") == "1" {
			t.Fatal("pigz is not installed and CHUNKYARD_REQUIRE_TOOLS=1 (apt-get install pigz)")
		}
		t.Skip("pigz is not installed (apt-get install pigz); set CHUNKYARD_REQUIRE_TOOLS=1 to make this fail")
	}
	real, edge := testInputs(t)
	var inputs []ztestdata.Input
	for _, in := range real {
		inputs = append(inputs, ztestdata.Input{Name: in.Name, Data: in.Data[:min(len(in.Data), 3<<20)]})
	}
	for _, in := range edge {
		switch in.Name {
		case "empty", "one-byte", "zeros-1m", "random-1m", "text-random-text", "text-65536", "repeat-40000":
			inputs = append(inputs, in)
		}
	}
	type mode struct {
		args []string
		o    PigzOptions
	}
	var modes []mode
	levels := []int{1, 2, 4, 6, 9}
	if raceEnabled {
		levels = []int{1, 6, 9}
	}
	for _, level := range levels {
		l := "-" + strconv.Itoa(level)
		modes = append(modes,
			mode{[]string{l, "-p", "2"}, PigzOptions{Level: level, Workers: 2}},
			mode{[]string{l, "-p", "1"}, PigzOptions{Level: level, Single: true}},
		)
	}
	modes = append(modes,
		mode{[]string{"-6", "-p", "4", "-b", "64"}, PigzOptions{Level: 6, BlockSize: 64 << 10, Workers: 3}},
		mode{[]string{"-1", "-p", "2", "-i"}, PigzOptions{Level: 1, Independent: true, Workers: 2}},
		mode{[]string{"-6", "-p", "1", "-i"}, PigzOptions{Level: 6, Independent: true, Single: true}},
	)
	for _, m := range modes {
		for _, in := range inputs {
			cmd := exec.Command("pigz", append([]string{"-c", "-n"}, m.args...)...)
			cmd.Stdin = bytes.NewReader(in.Data)
			gz, err := cmd.Output()
			if err != nil {
				t.Fatalf("pigz %v: %v", m.args, err)
			}
			want := gz[10 : len(gz)-8]
			var got bytes.Buffer
			if err := EncodePigz(context.Background(), &got, bytes.NewReader(in.Data), m.o); err != nil {
				t.Fatalf("pigz %v %s: %v", m.args, in.Name, err)
			}
			if d := firstDiff(got.Bytes(), want); d >= 0 {
				t.Errorf("pigz %v %s: differs at byte %d of %d", m.args, in.Name, d, len(want))
			}
		}
	}
}

// TestCheckpoints encodes with checkpoints at every level, re-encodes each
// segment from its checkpoint (after a Marshal/Unmarshal round trip) and
// splices them, by hand and with EncodeParallel on 1, 2 and 4 workers.
func TestCheckpoints(t *testing.T) {
	real, edge := testInputs(t)
	var data []byte
	for _, in := range real {
		data = append(data, in.Data[:min(len(in.Data), 1<<20)]...)
	}
	every := int64(128 << 10)
	for _, in := range edge {
		if in.Name == "repeat-40000" || !raceEnabled && (in.Name == "text-random-text" || in.Name == "zeros-1m") {
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

			// By hand: Resume each segment and splice.
			var spliced bytes.Buffer
			sp := NewSplicer(&spliced)
			prevEnd := int64(0)
			for k := 0; k <= len(cps); k++ {
				var seg bytes.Buffer
				var z *Writer
				var err error
				if k == 0 {
					z, _ = NewWriter(&seg, level)
					z.s.stop = cps[0].In
				} else {
					cp := &cps[k-1]
					var stop *Checkpoint
					if k < len(cps) {
						stop = &cps[k]
					}
					z, err = Resume(&seg, cp, data[cp.HistoryStart():cp.In], stop)
					if err != nil {
						t.Fatal(err)
					}
				}
				// Give each segment all the rest of the input: it must stop
				// by itself at the next checkpoint.
				z.Write(data[prevEnd:])
				if err := z.Close(); err != nil {
					t.Fatalf("segment %d: %v", k, err)
				}
				b, n := z.Tail()
				sp.Segment(seg.Bytes(), b, n)
				if k < len(cps) {
					prevEnd = cps[k].In
				}
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

// TestResumeWrongInput: a segment fed other bytes than the original's
// fails (the block boundaries move) instead of splicing silently.
func TestResumeWrongInput(t *testing.T) {
	testInputs(t)
	data := append([]byte(nil), text...)
	var one bytes.Buffer
	w, _ := NewWriterOptions(&one, Options{Level: 6, CheckpointEvery: 64 << 10})
	w.Write(data)
	w.Close()
	cps := w.Checkpoints()
	if len(cps) < 3 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	other := append([]byte(nil), data...)
	rand.New(rand.NewSource(3)).Read(other[cps[0].In : cps[0].In+30000])
	err := EncodeParallel(context.Background(), io.Discard, bytes.NewReader(other), int64(len(other)), 6, cps, 2)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("other input: got %v, want ErrMismatch", err)
	}
	if _, err := Resume(io.Discard, &cps[1], data[:10], nil); err == nil {
		t.Fatal("short history accepted")
	}
	var c Checkpoint
	b, _ := cps[1].MarshalBinary()
	b[0] = 99
	if c.UnmarshalBinary(b) == nil {
		t.Fatal("unknown checkpoint version accepted")
	}
	b[0] = cpVersion
	if c.UnmarshalBinary(b[:len(b)-1]) == nil {
		t.Fatal("truncated checkpoint accepted")
	}
}
