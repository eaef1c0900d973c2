package chunkstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWriteReadRoundTrip(t *testing.T) {
	// A tail chunk of compressible data may be too small to shrink, so
	// "compressed" asks for some compressed chunk, not all.
	const (
		none       = "none"       // nothing compressible: every chunk raw
		compressed = "compressed" // some chunk compressed
		mixed      = "mixed"      // some compressed, some raw
	)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, none},
		{"one byte", []byte{42}, none},
		{"below min chunk", randomBytes(1, 3000), none},
		{"random", randomBytes(2, 1<<20), none},
		{"text", textBytes(3, 1<<20), compressed},
		{"zeros", make([]byte, 300<<10), compressed},
		{"random then text", append(randomBytes(4, 512<<10), textBytes(5, 512<<10)...), mixed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, smallOpts(t, t.TempDir()))
			defer s.Close()
			chunks := mustWrite(t, s, tt.data, nil)
			var nCompressed, nRaw int
			for _, c := range chunks {
				if c.Loc == nil {
					t.Fatalf("chunk %s has no location though nothing is known", c.ID)
				}
				if c.Loc.RawLen != c.RawLen {
					t.Fatalf("Loc.RawLen %d != RawLen %d", c.Loc.RawLen, c.RawLen)
				}
				if c.Loc.Compressed {
					nCompressed++
					if c.Loc.StoredLen >= c.RawLen {
						t.Errorf("compressed chunk not smaller: %d >= %d", c.Loc.StoredLen, c.RawLen)
					}
				} else {
					nRaw++
					if c.Loc.StoredLen != c.RawLen {
						t.Errorf("raw chunk stored in %d bytes, raw %d", c.Loc.StoredLen, c.RawLen)
					}
				}
			}
			switch {
			case tt.want == none && nCompressed > 0,
				tt.want == compressed && nCompressed == 0,
				tt.want == mixed && (nCompressed == 0 || nRaw == 0):
				t.Errorf("%d compressed and %d raw chunks, want %s", nCompressed, nRaw, tt.want)
			}
			if got := readAll(t, s, chunks, nil); !bytes.Equal(got, tt.data) {
				t.Fatalf("round trip mismatch: %d bytes back, want %d", len(got), len(tt.data))
			}
		})
	}
}

func TestReadChunkReusesDst(t *testing.T) {
	s := openStore(t, smallOpts(t, t.TempDir()))
	defer s.Close()
	for _, data := range [][]byte{randomBytes(1, 3000), textBytes(1, 3000)} {
		chunks := mustWrite(t, s, data, nil)
		dst := make([]byte, 0, 64<<10)
		got, err := s.ReadChunk(context.Background(), *chunks[0].Loc, chunks[0].ID, dst)
		if err != nil {
			t.Fatal(err)
		}
		if &got[0] != &dst[:1][0] {
			t.Errorf("ReadChunk did not use dst (compressed=%t)", chunks[0].Loc.Compressed)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("mismatch")
		}
	}
}

func TestDedupKnown(t *testing.T) {
	s := openStore(t, smallOpts(t, t.TempDir()))
	defer s.Close()
	data := randomBytes(7, 1<<20)
	first := mustWrite(t, s, data, nil)
	locs := locations(first, nil)
	before, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	var calls int
	known := func(id ID) bool { calls++; _, ok := locs[id]; return ok }
	second := mustWrite(t, s, data, known)
	if len(second) != len(first) {
		t.Fatalf("%d chunks, want %d", len(second), len(first))
	}
	for i := range second {
		if second[i].ID != first[i].ID || second[i].RawLen != first[i].RawLen {
			t.Fatalf("chunk %d differs between writes", i)
		}
		if second[i].Loc != nil {
			t.Fatalf("known chunk %d was written", i)
		}
	}
	if calls != len(locs) {
		t.Errorf("known called %d times, want once per distinct chunk (%d)", calls, len(locs))
	}
	after, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.PackBytes+after.OpenPackBytes != before.PackBytes+before.OpenPackBytes {
		t.Errorf("dedup write grew the store: %+v -> %+v", before, after)
	}
	if got := readAll(t, s, second, locs); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch")
	}

	// Half known: an edited copy stores only the new chunks.
	edited := append(bytes.Clone(data[:len(data)/2]), randomBytes(8, len(data)/2)...)
	third := mustWrite(t, s, edited, known)
	var reused, fresh int
	for _, c := range third {
		if c.Loc == nil {
			reused++
		} else {
			fresh++
		}
	}
	if reused == 0 || fresh == 0 {
		t.Errorf("edited copy: %d reused, %d new chunks; want both", reused, fresh)
	}
	if got := readAll(t, s, third, locs); !bytes.Equal(got, edited) {
		t.Fatal("round trip mismatch")
	}
}

func TestRepeatedChunkWrittenOnce(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, smallOpts(t, dir))
	defer s.Close()
	// A block of zeros cuts into identical min-size chunks (the chunker cuts
	// after 64 zero bytes), and a repeated random region repeats its chunks.
	region := randomBytes(9, 256<<10)
	var data []byte
	data = append(data, region...)
	data = append(data, make([]byte, 200<<10)...)
	data = append(data, region...)
	data = append(data, region...)
	chunks := mustWrite(t, s, data, nil)

	byID := make(map[ID]Location)
	var repeats int
	for i, c := range chunks {
		if c.Loc == nil {
			t.Fatalf("chunk %d has no location", i)
		}
		if l, ok := byID[c.ID]; ok {
			repeats++
			if l != *c.Loc {
				t.Fatalf("repeated chunk %s has two locations: %+v and %+v", c.ID, l, *c.Loc)
			}
			continue
		}
		byID[c.ID] = *c.Loc
	}
	if repeats < 10 {
		t.Fatalf("only %d repeated chunks; test data does not repeat", repeats)
	}
	// Every location is distinct: each distinct chunk was written once.
	seen := make(map[Location]bool)
	for _, l := range byID {
		if seen[l] {
			t.Fatalf("two chunks share location %+v", l)
		}
		seen[l] = true
	}
	var packRecords int
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, smallOpts(t, dir))
	defer s.Close()
	err := s.ListPacks(context.Background(), func(name string, size int64) error {
		entries, err := s.ReadTrailer(context.Background(), name)
		packRecords += len(entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if packRecords != len(byID) {
		t.Errorf("%d records in packs, want %d distinct chunks", packRecords, len(byID))
	}
	if got := readAll(t, s, chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch")
	}
}

func TestSealAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, smallOpts(t, dir))
	data := append(randomBytes(10, 1<<20), textBytes(11, 2<<20)...)
	chunks := mustWrite(t, s, data, nil)
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs < 3 {
		t.Fatalf("Stats %+v: want several sealed packs with PackSize 256 KiB", st)
	}
	if st.OpenPacks > 1 { // none if the last chunk happened to fill a pack
		t.Errorf("Stats %+v: want at most one open pack", st)
	}
	packs := make(map[string]bool)
	for _, c := range chunks {
		packs[c.Loc.Pack] = true
	}
	if len(packs) != st.Packs+st.OpenPacks {
		t.Errorf("chunks in %d packs, Stats says %d+%d", len(packs), st.Packs, st.OpenPacks)
	}
	// Readable after seal (sealed packs) and from staging (the open one).
	if got := readAll(t, s, chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch before Close")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Write(context.Background(), bytes.NewReader(data), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if left := stagingFiles(t, dir); len(left) != 0 {
		t.Errorf("staging not empty after Close: %v", left)
	}

	// Reopen with other chunk options: the config's are used.
	opts := smallOpts(t, dir)
	opts.MinChunk, opts.MaxChunk, opts.AverageBits = 1<<20, 2<<20, 20
	s2 := openStore(t, opts)
	defer s2.Close()
	if s2.cfg != s.cfg {
		t.Fatalf("reopened config %+v, want %+v", s2.cfg, s.cfg)
	}
	st, err = s2.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs != len(packs) || st.OpenPacks != 0 {
		t.Errorf("after reopen Stats %+v, want %d sealed packs", st, len(packs))
	}
	if got := readAll(t, s2, chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch after reopen")
	}
	// Same polynomial and sizes: writing again cuts the same chunks.
	again := mustWrite(t, s2, data, nil)
	if len(again) != len(chunks) || again[0].ID != chunks[0].ID {
		t.Error("reopened store cuts different chunks")
	}
}

func TestReadTrailerMatchesWrite(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, smallOpts(t, dir))
	data := append(textBytes(12, 1<<20), randomBytes(13, 1<<20)...)
	chunks := mustWrite(t, s, data, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, smallOpts(t, dir))
	defer s.Close()

	want := locations(chunks, nil)
	got := make(map[ID]Location)
	var packs int
	err := s.ListPacks(context.Background(), func(name string, size int64) error {
		packs++
		entries, err := s.ReadTrailer(context.Background(), name)
		if err != nil {
			return err
		}
		for i, e := range entries {
			if e.Loc.Pack != name {
				return fmt.Errorf("entry %d of %s names pack %s", i, name, e.Loc.Pack)
			}
			if i > 0 && e.Loc.Offset <= entries[i-1].Loc.Offset {
				return fmt.Errorf("entries of %s out of order", name)
			}
			got[e.ID] = e.Loc
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if packs < 2 {
		t.Fatalf("%d packs, want several", packs)
	}
	if len(got) != len(want) {
		t.Fatalf("trailers list %d chunks, Write stored %d", len(got), len(want))
	}
	for id, l := range want {
		if got[id] != l {
			t.Errorf("chunk %s: trailer %+v, Write %+v", id, got[id], l)
		}
	}
	if _, err := s.ReadTrailer(context.Background(), "00000000000000000000000000000000"); !errors.Is(err, ErrNotExist) {
		t.Errorf("ReadTrailer of missing pack: %v, want ErrNotExist", err)
	}
}

func TestCrashRecovery(t *testing.T) {
	tests := []struct {
		name string
		// damage changes the staging file, n bytes long.
		damage     func(t *testing.T, path string, n int64)
		wantPacked bool // some chunks survive
		dropsLast  bool // the last acknowledged record is damaged
	}{
		{"clean", func(t *testing.T, path string, n int64) {}, true, false},
		{"torn tail record", func(t *testing.T, path string, n int64) {
			appendBytes(t, path, append(recordHeaderFor(t, 1000), randomBytes(1, 300)...))
		}, true, false},
		{"torn tail header", func(t *testing.T, path string, n int64) {
			appendBytes(t, path, recordHeaderFor(t, 1000)[:20])
		}, true, false},
		{"garbage tail", func(t *testing.T, path string, n int64) {
			appendBytes(t, path, randomBytes(2, 5000))
		}, true, false},
		{"last record corrupted", func(t *testing.T, path string, n int64) {
			flipByte(t, path, n-10)
		}, true, true},
		{"last record truncated", func(t *testing.T, path string, n int64) {
			if err := os.Truncate(path, n-1); err != nil {
				t.Fatal(err)
			}
		}, true, true},
		{"only header left", func(t *testing.T, path string, n int64) {
			if err := os.Truncate(path, packHeaderLen); err != nil {
				t.Fatal(err)
			}
		}, false, true},
		{"torn pack header", func(t *testing.T, path string, n int64) {
			if err := os.Truncate(path, 3); err != nil {
				t.Fatal(err)
			}
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := smallOpts(t, dir)
			opts.PackSize = 64 << 20 // everything stays in one open pack
			s := openStore(t, opts)
			first := mustWrite(t, s, textBytes(20, 300<<10), nil)
			second := mustWrite(t, s, randomBytes(21, 200<<10), nil)
			crash(t, s)

			names := stagingFiles(t, dir)
			if len(names) != 1 {
				t.Fatalf("staging holds %v, want one pack", names)
			}
			path := filepath.Join(dir, stagingDirName, names[0])
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, path, st.Size())

			s = openStore(t, opts)
			defer s.Close()
			if left := stagingFiles(t, dir); len(left) != 0 {
				t.Fatalf("staging not empty after recovery: %v", left)
			}
			var packs []string
			if err := s.ListPacks(context.Background(), func(name string, size int64) error {
				packs = append(packs, name)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !tt.wantPacked {
				if len(packs) != 0 {
					t.Fatalf("packs %v, want none", packs)
				}
				return
			}
			if len(packs) != 1 || packs[0] != names[0] {
				t.Fatalf("packs %v, want [%s]", packs, names[0])
			}
			entries, err := s.ReadTrailer(context.Background(), packs[0])
			if err != nil {
				t.Fatalf("ReadTrailer after recovery: %v", err)
			}
			// All of the first Write survives; of the second, all but a
			// damaged last record.
			all := append(slices.Clone(first), second...)
			inTrailer := locations(nil, nil)
			for _, e := range entries {
				inTrailer[e.ID] = e.Loc
			}
			for i, c := range all {
				l, ok := inTrailer[c.ID]
				if !ok {
					if i == len(all)-1 && tt.dropsLast {
						continue
					}
					t.Fatalf("chunk %d missing after recovery", i)
				}
				if l != *c.Loc {
					t.Fatalf("chunk %d: trailer %+v, Write %+v", i, l, *c.Loc)
				}
				b, err := s.ReadChunk(context.Background(), l, c.ID, nil)
				if err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
				if len(b) != int(c.RawLen) {
					t.Fatalf("chunk %d: %d bytes", i, len(b))
				}
			}
		})
	}
}

// recordHeaderFor returns a valid record header announcing n stored bytes.
func recordHeaderFor(t *testing.T, n uint32) []byte {
	t.Helper()
	var b [recordHeaderLen]byte
	recordHeader{rawLen: n, storedLen: n, dataCRC: 1}.encode(&b)
	return b[:]
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptChunk(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, smallOpts(t, dir))
	raw := mustWrite(t, s, randomBytes(30, 3000), nil)[0]
	comp := mustWrite(t, s, textBytes(31, 3000), nil)[0]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, smallOpts(t, dir))
	defer s.Close()
	packPath := func(l *Location) string { return filepath.Join(dir, packsDirName, l.Pack[:2], l.Pack) }

	tests := []struct {
		name  string
		chunk Chunk
		loc   func(Location) Location
		id    func(ID) ID
		flip  int64 // offset relative to Loc.Offset to damage, or 0 for none
	}{
		{name: "raw data byte", chunk: raw, flip: 100},
		{name: "compressed data byte", chunk: comp, flip: 5},
		{name: "record header", chunk: raw, flip: -30},
		{name: "wrong id", chunk: raw, id: func(id ID) ID { id[0] ^= 1; return id }},
		{name: "wrong offset", chunk: raw, loc: func(l Location) Location { l.Offset += 1; return l }},
		{name: "wrong raw length", chunk: comp, loc: func(l Location) Location { l.RawLen--; return l }},
		{name: "compressed flag flipped", chunk: comp, loc: func(l Location) Location { l.Compressed = false; return l }},
		{name: "stored beyond raw", chunk: raw, loc: func(l Location) Location { l.StoredLen++; return l }},
		{name: "past end of pack", chunk: raw, loc: func(l Location) Location { l.Offset += 1 << 20; return l }},
		{name: "oversized", chunk: raw, loc: func(l Location) Location { l.RawLen, l.StoredLen = 1<<30, 1<<30; return l }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, id := *tt.chunk.Loc, tt.chunk.ID
			if tt.flip != 0 {
				flipByte(t, packPath(&loc), loc.Offset+tt.flip)
				defer flipByte(t, packPath(&loc), loc.Offset+tt.flip)
			}
			if tt.loc != nil {
				loc = tt.loc(loc)
			}
			if tt.id != nil {
				id = tt.id(id)
			}
			_, err := s.ReadChunk(context.Background(), loc, id, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadChunk: %v, want ErrCorrupt", err)
			}
			// Without the content hash the record's own checks (header
			// CRC, id and lengths, stored bytes' CRC-32C) still catch it.
			_, err = s.ReadChunks(context.Background(), []ChunkRead{{ID: id, Loc: loc, SkipHash: true}}, nil)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadChunks with SkipHash: %v, want ErrCorrupt", err)
			}
		})
	}
	// Undamaged again.
	for _, c := range []Chunk{raw, comp} {
		if _, err := s.ReadChunk(context.Background(), *c.Loc, c.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.ReadChunk(context.Background(), Location{Pack: "ffffffffffffffffffffffffffffffff", Offset: 64, StoredLen: 1, RawLen: 1}, raw.ID, nil)
	if !errors.Is(err, ErrNotExist) {
		t.Errorf("missing pack: %v, want ErrNotExist", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	opts := smallOpts(t, dir)
	opts.IngestConcurrency = 3
	s := openStore(t, opts)
	const writers = 8
	shared := randomBytes(40, 200<<10) // every writer's data contains it
	inputs := make([][]byte, writers)
	results := make([][]Chunk, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		var data []byte
		if i%2 == 0 {
			data = append(textBytes(uint64(100+i), 300<<10), shared...)
		} else {
			data = append(randomBytes(uint64(100+i), 300<<10), shared...)
		}
		inputs[i] = data
		wg.Add(1)
		go func() {
			defer wg.Done()
			var chunks []Chunk
			var size int64
			chunks, size, errs[i] = s.Write(context.Background(), bytes.NewReader(data), nil)
			if errs[i] == nil && size != int64(len(data)) {
				errs[i] = fmt.Errorf("size %d, want %d", size, len(data))
			}
			results[i] = chunks
			// Read while others write and seal.
			if errs[i] == nil {
				for _, c := range chunks {
					if _, err := s.ReadChunk(context.Background(), *c.Loc, c.ID, nil); err != nil {
						errs[i] = err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	for i := range writers {
		if got := readAll(t, s, results[i], nil); !bytes.Equal(got, inputs[i]) {
			t.Fatalf("writer %d: round trip mismatch", i)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	defer s.Close()
	for i := range writers {
		if got := readAll(t, s, results[i], nil); !bytes.Equal(got, inputs[i]) {
			t.Fatalf("writer %d after reopen: round trip mismatch", i)
		}
	}
}

// TestReadDuringSeal reads chunks of the open pack continuously while
// writers fill and seal packs.
func TestReadDuringSeal(t *testing.T) {
	opts := smallOpts(t, t.TempDir())
	opts.PackSize = 128 << 10
	s := openStore(t, opts)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	locs := make(chan Chunk, 1024)
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var seen []Chunk
		for {
			select {
			case c := <-locs:
				seen = append(seen, c)
			case <-ctx.Done():
				return
			}
			for _, c := range seen[max(0, len(seen)-8):] {
				if _, err := s.ReadChunk(context.Background(), *c.Loc, c.ID, nil); err != nil {
					readErr = err
					return
				}
			}
		}
	}()
	for i := range 20 {
		chunks := mustWrite(t, s, randomBytes(uint64(200+i), 100<<10), nil)
		for _, c := range chunks {
			locs <- c
		}
	}
	cancel()
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
}

// hideOptional hides a backend's optional methods (Adopt, Stat), so the
// store takes its Put and List paths.
type hideOptional struct{ Backend }

func TestBackendWithoutOptionalMethods(t *testing.T) {
	dir := t.TempDir()
	lb, err := NewLocalBackend(filepath.Join(dir, "elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	opts := smallOpts(t, filepath.Join(dir, "store"))
	opts.Backend = hideOptional{lb}
	s := openStore(t, opts)
	data := append(randomBytes(50, 1<<20), textBytes(51, 1<<20)...)
	chunks := mustWrite(t, s, data, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	defer s.Close()
	if got := readAll(t, s, chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch")
	}
	n := 0
	err = s.ListPacks(context.Background(), func(name string, size int64) error {
		n++
		_, err := s.ReadTrailer(context.Background(), name)
		return err
	})
	if err != nil || n == 0 {
		t.Fatalf("ListPacks: %d packs, %v", n, err)
	}
}

func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, smallOpts(t, dir))
	if _, err := Open(context.Background(), smallOpts(t, dir)); err == nil {
		t.Fatal("second Open of the same dir succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, smallOpts(t, dir))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts func(*Options)
	}{
		{"no dir", func(o *Options) { o.Dir = "" }},
		{"min below window", func(o *Options) { o.MinChunk = 10 }},
		{"max below min", func(o *Options) { o.MaxChunk = 1024 }},
		{"max too large", func(o *Options) { o.MaxChunk = 1 << 30 }},
		{"average bits", func(o *Options) { o.AverageBits = 40 }},
		{"negative pack size", func(o *Options) { o.PackSize = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := smallOpts(t, t.TempDir())
			tt.opts(&opts)
			if s, err := Open(context.Background(), opts); err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, configFileName), []byte(`{"version":1,"chunker_polynomial":"3","min_chunk_size":4096,"max_chunk_size":65536,"chunker_average_bits":14}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(context.Background(), smallOpts(t, dir)); err == nil {
		s.Close()
		t.Fatal("Open accepted a reducible polynomial")
	}
}

// failingReader returns data, then an error.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestWriteErrors(t *testing.T) {
	s := openStore(t, smallOpts(t, t.TempDir()))
	defer s.Close()
	boom := errors.New("boom")
	_, _, err := s.Write(context.Background(), &failingReader{bytes.NewReader(randomBytes(60, 500<<10)), boom}, nil)
	if !errors.Is(err, boom) {
		t.Errorf("reader error: %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = s.Write(ctx, bytes.NewReader(randomBytes(61, 500<<10)), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	// The store still works.
	data := randomBytes(62, 100<<10)
	if got := readAll(t, s, mustWrite(t, s, data, nil), nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch")
	}
}

// flakyBackend fails Put while fail is set, and has no Adopt, like a remote
// backend that is down.
type flakyBackend struct {
	Backend
	fail  atomic.Bool
	fails atomic.Int32
}

func (b *flakyBackend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if b.fail.Load() {
		b.fails.Add(1)
		return errors.New("backend down")
	}
	return b.Backend.Put(ctx, name, r, size)
}

func TestBackendFailureKeepsDataReadable(t *testing.T) {
	dir := t.TempDir()
	lb, err := NewLocalBackend(filepath.Join(dir, "remote"))
	if err != nil {
		t.Fatal(err)
	}
	fb := &flakyBackend{Backend: lb}
	opts := smallOpts(t, filepath.Join(dir, "store"))
	opts.Backend = fb
	s := openStore(t, opts)

	// The backend is down: Write still succeeds (data is durable in
	// staging) and everything stays readable from staging.
	fb.fail.Store(true)
	data := randomBytes(70, 1<<20)
	chunks := mustWrite(t, s, data, nil)
	if fb.fails.Load() == 0 {
		t.Fatal("no seal reached the backend")
	}
	if got := readAll(t, s, chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch while backend is down")
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs != 0 || st.OpenPacks < 2 {
		t.Fatalf("Stats %+v: want only staging packs", st)
	}

	// Back up: the background uploader hands over the backlog, woken by
	// the next seal at the latest.
	fb.fail.Store(false)
	more := randomBytes(71, 300<<10)
	moreChunks := mustWrite(t, s, more, nil)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err = s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.OpenPacks <= 1 && st.Packs >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats %+v after recovery of the backend: want the backlog sealed", st)
		}
	}

	// Down again at Close: Close fails, the packs stay in staging and the
	// next Open seals them.
	fb.fail.Store(true)
	last := randomBytes(72, 10<<10) // stays in the open pack
	lastChunks := mustWrite(t, s, last, nil)
	if err := s.Close(); err == nil {
		t.Fatal("Close succeeded with the backend down")
	}
	if len(stagingFiles(t, opts.Dir)) == 0 {
		t.Fatal("staging empty after a failed Close")
	}
	fb.fail.Store(false)
	s = openStore(t, opts)
	defer s.Close()
	if left := stagingFiles(t, opts.Dir); len(left) != 0 {
		t.Fatalf("staging not empty after reopen: %v", left)
	}
	if got := readAll(t, s, chunks, nil); !bytes.Equal(got, data) {
		t.Fatal("round trip mismatch after reopen")
	}
	if got := readAll(t, s, moreChunks, nil); !bytes.Equal(got, more) {
		t.Fatal("round trip mismatch after reopen")
	}
	if got := readAll(t, s, lastChunks, nil); !bytes.Equal(got, last) {
		t.Fatal("round trip mismatch after reopen")
	}
}

// TestSkipHash: a record whose checksums are right but whose content is
// not what its id says (a writer's bug, not bit rot) is refused by a
// hashed read and returned by a SkipHash one, whose caller checks a
// digest over it.
func TestSkipHash(t *testing.T) {
	s := openStore(t, smallOpts(t, t.TempDir()))
	defer s.Close()
	data := randomBytes(50, 3000)
	id := ID(sha256.Sum256([]byte("not this content")))
	loc, _, full, err := s.appendRecord(id, uint32(len(data)), data, false, crc32.Checksum(data, crcTable()))
	if err != nil || full != nil {
		t.Fatalf("appendRecord: %v (full %v)", err, full)
	}
	if _, err := s.ReadChunk(context.Background(), loc, id, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("hashed read: %v, want ErrCorrupt", err)
	}
	out, err := s.ReadChunks(context.Background(), []ChunkRead{{ID: id, Loc: loc, SkipHash: true}}, nil)
	if err != nil || !bytes.Equal(out[0], data) {
		t.Fatalf("SkipHash read: %v; bytes as written: %t", err, err == nil && bytes.Equal(out[0], data))
	}
}
