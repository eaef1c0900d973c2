package extsort

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

type record struct{ k, v string }

// sortAll adds recs to a new sorter and returns what it yields.
func sortAll(t testing.TB, o Options, recs []record) ([]record, *Sorter) {
	t.Helper()
	s := New(o)
	t.Cleanup(func() { s.Close() })
	for _, r := range recs {
		if err := s.Add([]byte(r.k), []byte(r.v)); err != nil {
			t.Fatal(err)
		}
		if held := cap(s.arena) + cap(s.recs)*recOverhead; held > s.room && len(s.recs) > 1 {
			t.Fatalf("buffer holds %d bytes, room %d", held, s.room)
		}
	}
	it, err := s.Sort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for it.Next() {
		out = append(out, record{string(it.Key()), string(it.Value())})
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out, s
}

// want sorts recs in memory: by key, then value (the sorter leaves equal
// keys in no particular order, so both sides are compared sorted so).
func want(recs []record) []record {
	out := slices.Clone(recs)
	slices.SortFunc(out, func(a, b record) int { return cmp.Or(cmp.Compare(a.k, b.k), cmp.Compare(a.v, b.v)) })
	return out
}

// checkSorted fails unless got is recs in key order, as a multiset.
func checkSorted(t testing.TB, got, recs []record) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i-1].k > got[i].k {
			t.Fatalf("out of order at %d: %q > %q", i, got[i-1].k, got[i].k)
		}
	}
	w := want(recs)
	g := want(got)
	if len(g) != len(w) {
		t.Fatalf("got %d records, want %d", len(g), len(w))
	}
	for i := range w {
		if g[i] != w[i] {
			t.Fatalf("record %d: got %q, want %q", i, g[i], w[i])
		}
	}
}

// randomRecords returns n records with keys of 0 to maxLen bytes drawn
// from a small alphabet (so that keys share prefixes, repeat, and are
// prefixes of one another), NUL and 0xff included.
func randomRecords(rng *rand.Rand, n, maxLen int) []record {
	alphabet := []byte{0, 1, 'a', 'b', 0xfe, 0xff}
	recs := make([]record, n)
	for i := range recs {
		k := make([]byte, rng.IntN(maxLen+1))
		for j := range k {
			k[j] = alphabet[rng.IntN(len(alphabet))]
		}
		v := make([]byte, rng.IntN(20))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		recs[i] = record{string(k), string(v)}
	}
	return recs
}

func TestEmpty(t *testing.T) {
	dir := t.TempDir()
	got, s := sortAll(t, Options{Dir: dir}, nil)
	if len(got) != 0 || s.dir != "" {
		t.Fatalf("got %q, temp dir %q", got, s.dir)
	}
}

func TestInMemory(t *testing.T) {
	recs := randomRecords(rand.New(rand.NewPCG(1, 1)), 1000, 8)
	got, s := sortAll(t, Options{Dir: t.TempDir()}, recs)
	if s.dir != "" || len(s.runs) != 0 {
		t.Fatalf("a sort that fits in memory wrote %d runs", len(s.runs))
	}
	checkSorted(t, got, recs)
}

// TestManyRuns: a tiny budget and fan-in spill hundreds of runs, merged in
// several passes; keys of many lengths, duplicates among them.
func TestManyRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, tc := range []struct {
		n, maxLen, memory, fanIn int
	}{
		{1500, 4, MinMemory, 2},
		{1000, 40, MinMemory, 3},
		{3000, 300, 4 << 10, 0},
		{300, 1000, MinMemory, 2}, // records near or over the budget
	} {
		t.Run(fmt.Sprintf("n=%d,len=%d,mem=%d,fanin=%d", tc.n, tc.maxLen, tc.memory, tc.fanIn), func(t *testing.T) {
			recs := randomRecords(rng, tc.n, tc.maxLen)
			s := New(Options{Dir: t.TempDir(), Memory: tc.memory, FanIn: tc.fanIn})
			spills := 0
			for _, r := range recs {
				before := len(s.runs)
				if err := s.Add([]byte(r.k), []byte(r.v)); err != nil {
					t.Fatal(err)
				}
				spills += len(s.runs) - before
			}
			s.Close()
			if spills < 10 {
				t.Fatalf("only %d runs spilled", spills)
			}
			got, _ := sortAll(t, Options{Dir: t.TempDir(), Memory: tc.memory, FanIn: tc.fanIn}, recs)
			checkSorted(t, got, recs)
		})
	}
}

func sum(acc, v []byte) []byte {
	a, _ := binary.Uvarint(acc)
	b, _ := binary.Uvarint(v)
	return binary.AppendUvarint(acc[:0], a+b)
}

// TestCombine: counts combined across the buffer, runs and merge passes
// equal a map's.
func TestCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	counts := map[string]uint64{}
	var recs []record
	for range 4000 {
		k := fmt.Sprintf("key-%d", rng.IntN(500))
		n := uint64(rng.IntN(5))
		counts[k] += n
		recs = append(recs, record{k, string(binary.AppendUvarint(nil, n))})
	}
	for _, memory := range []int{MinMemory, 1 << 20} {
		got, _ := sortAll(t, Options{Dir: t.TempDir(), Memory: memory, FanIn: 3, Combine: sum}, recs)
		if len(got) != len(counts) {
			t.Fatalf("memory %d: %d keys, want %d", memory, len(got), len(counts))
		}
		for i, r := range got {
			if i > 0 && got[i-1].k >= r.k {
				t.Fatalf("memory %d: keys out of order or repeated: %q, %q", memory, got[i-1].k, r.k)
			}
			n, _ := binary.Uvarint([]byte(r.v))
			if n != counts[r.k] {
				t.Fatalf("memory %d: %s: %d, want %d", memory, r.k, n, counts[r.k])
			}
		}
	}
}

// TestCorruptRun: a run that does not read back as written is an error,
// never records out of thin air.
func TestCorruptRun(t *testing.T) {
	recs := randomRecords(rand.New(rand.NewPCG(4, 4)), 600, 16)
	for _, damage := range []string{"flip", "truncate", "append"} {
		t.Run(damage, func(t *testing.T) {
			s := New(Options{Dir: t.TempDir(), Memory: MinMemory, FanIn: 64})
			defer s.Close()
			for _, r := range recs {
				if err := s.Add([]byte(r.k), []byte(r.v)); err != nil {
					t.Fatal(err)
				}
			}
			if len(s.runs) < 2 {
				t.Fatalf("%d runs", len(s.runs))
			}
			path := s.runs[1].path
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "flip":
				b[len(b)/2] ^= 0x10
			case "truncate":
				b = b[:len(b)-3]
			case "append":
				b = append(b, 0)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			it, err := s.Sort(context.Background()) // may merge it already
			if err == nil {
				for it.Next() {
				}
				err = it.Err()
			}
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("err = %v, want errCorrupt", err)
			}
		})
	}
}

// TestCloseRemovesRuns: no file outlives Close, read to the end or not.
func TestCloseRemovesRuns(t *testing.T) {
	dir := t.TempDir()
	s := New(Options{Dir: dir, Memory: MinMemory, FanIn: 2})
	for _, r := range randomRecords(rand.New(rand.NewPCG(5, 5)), 500, 10) {
		if err := s.Add([]byte(r.k), []byte(r.v)); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Sort(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	it.Next()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left in %s: %v", dir, left)
	}
	if it.Next() {
		t.Fatal("Next after Close")
	}
	if err := s.Add([]byte("x"), nil); err == nil {
		t.Fatal("Add after Close")
	}
}

func TestSortCancelled(t *testing.T) {
	s := New(Options{Dir: t.TempDir(), Memory: MinMemory, FanIn: 2})
	defer s.Close()
	for _, r := range randomRecords(rand.New(rand.NewPCG(6, 6)), 500, 10) {
		if err := s.Add([]byte(r.k), []byte(r.v)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Sort(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(s.dir, "*")); len(matches) == 0 {
		t.Fatal("runs gone before Close")
	}
}

// FuzzSort checks the sorter against an in-memory sort: the input is cut
// into records at its 0x00 bytes (key and value alternate), sorted with
// the smallest budget and fan-in, without combining and then, with the
// first sort's Buffer, with.
func FuzzSort(f *testing.F) {
	f.Add([]byte("b\x00v1\x00a\x00v2\x00b\x00v3\x00\x00\x00ab\x00"))
	f.Add(bytes.Repeat([]byte("key\x00value\x00"), 200))
	f.Add(bytes.Repeat([]byte("\xff\xff\x00\x01\x00k\x00\x00"), 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := bytes.Split(data, []byte{0})
		var recs []record
		for i := 0; i+1 < len(parts); i += 2 {
			recs = append(recs, record{string(parts[i]), string(parts[i+1])})
		}
		var buf Buffer // handed from the first sort to the second
		got, s := sortAll(t, Options{Dir: t.TempDir(), Memory: MinMemory, FanIn: 2, Buffer: &buf}, recs)
		checkSorted(t, got, recs)
		s.Close()

		// Combined: values concatenated in sorted order per key, compared
		// as sorted byte multisets (the order of combining is free).
		concat := func(acc, v []byte) []byte { return append(acc, v...) }
		got, _ = sortAll(t, Options{Dir: t.TempDir(), Memory: MinMemory, FanIn: 2, Combine: concat, Buffer: &buf}, recs)
		byKey := map[string][]byte{}
		for _, r := range recs {
			byKey[r.k] = append(byKey[r.k], r.v...)
		}
		if len(got) != len(byKey) {
			t.Fatalf("combined: %d keys, want %d", len(got), len(byKey))
		}
		for i, r := range got {
			if i > 0 && got[i-1].k >= r.k {
				t.Fatalf("combined: keys out of order or repeated: %q, %q", got[i-1].k, r.k)
			}
			g, w := []byte(r.v), byKey[r.k]
			slices.Sort(g)
			slices.Sort(w)
			if !bytes.Equal(g, w) {
				t.Fatalf("combined %q: %q, want %q", r.k, g, w)
			}
		}
	})
}

// BenchmarkSort sorts a million 32-byte random keys (chunk IDs, say) with
// a count each, combined, in a 4 MiB budget: a few dozen runs.
func BenchmarkSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	keys := make([][]byte, 1_000_000)
	for i := range keys {
		keys[i] = make([]byte, 32)
		for j := range keys[i] {
			keys[i][j] = byte(rng.Uint32())
		}
	}
	one := binary.AppendUvarint(nil, 1)
	b.SetBytes(int64(len(keys)) * 33)
	for b.Loop() {
		s := New(Options{Dir: b.TempDir(), Memory: 4 << 20, Combine: sum})
		for _, k := range keys {
			if err := s.Add(k, one); err != nil {
				b.Fatal(err)
			}
		}
		it, err := s.Sort(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for it.Next() {
			n++
		}
		if it.Err() != nil || n != len(keys) {
			b.Fatalf("%d records, %v", n, it.Err())
		}
		b.ReportMetric(float64(len(s.runs)), "runs")
		s.Close()
	}
}

// TestBuffer: sorters in sequence share one Buffer: the second starts
// with the first's memory, both sort right, and two at once are refused.
func TestBuffer(t *testing.T) {
	var buf Buffer
	rng := rand.New(rand.NewPCG(8, 8))
	for i, memory := range []int{1 << 20, 8 << 10, 1 << 20} {
		recs := randomRecords(rng, 3000, 12)
		o := Options{Dir: t.TempDir(), Memory: memory, Buffer: &buf}
		s := New(o)
		if held := cap(s.arena) + cap(s.recs)*recOverhead; i == 2 && held == 0 || held > s.room {
			t.Fatalf("sort %d: took over %d bytes of the buffer, room %d", i, held, s.room)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("a Buffer in use given to a second sorter")
				}
			}()
			New(o)
		}()
		s.Close()
		got, s := sortAll(t, o, recs)
		if i == 1 {
			s.Close() // its small buffer goes to the next
		}
		checkSorted(t, got, recs)
		if held := cap(buf.arena) + cap(buf.recs)*recOverhead; held > s.room {
			t.Fatalf("sort %d: the buffer holds %d bytes, room %d", i, held, s.room)
		}
		s.Close()
	}
}

// TestRunsRetainNoBuffers: what the sorter keeps of a spilled run is a
// few words, not the run's write buffer (it kept them all once: memory
// grew with the input).
func TestRunsRetainNoBuffers(t *testing.T) {
	s := New(Options{Dir: t.TempDir(), Memory: MinMemory})
	defer s.Close()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	rng := rand.New(rand.NewPCG(9, 9))
	for len(s.runs) < 1000 {
		for _, r := range randomRecords(rng, 100, 16) {
			if err := s.Add([]byte(r.k), []byte(r.v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if grown := int64(heap()) - int64(before); grown > 256<<10 {
		t.Fatalf("the heap grew by %d bytes over %d runs of %d-byte buffers", grown, len(s.runs), s.bufSize)
	}
}
