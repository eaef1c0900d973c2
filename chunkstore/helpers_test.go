package chunkstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/restic/chunker"
)

// testPol is a fixed irreducible polynomial of degree 53 (the one restic's
// chunker tests use), for stores whose chunk boundaries must not change.
const testPol = chunker.Pol(0x3DA3358B4DC173)

// smallOpts are store options with small chunks and packs, so that tests
// cover many chunks and several packs with little data.
func smallOpts(t testing.TB, dir string) Options {
	return Options{
		Dir:         dir,
		PackSize:    256 << 10,
		MinChunk:    4 << 10,
		MaxChunk:    64 << 10,
		AverageBits: 14, // 16 KiB
		Logger:      testLogger(t),
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func openStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// writeFixedConfig creates dir with a config.json using testPol, so that the
// store's chunk boundaries are reproducible.
func writeFixedConfig(t testing.TB, dir string, minChunk, maxChunk, averageBits int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := writeConfig(vfs.Default, dir, config{Version: configVersion, Polynomial: testPol, MinChunk: minChunk, MaxChunk: maxChunk, AverageBits: averageBits})
	if err != nil {
		t.Fatal(err)
	}
}

// crash stops s as a killed process would: no seal, no trailer, files and
// the directory lock released.
func crash(t testing.TB, s *Store) {
	t.Helper()
	s.mu.Lock()
	s.closed = true
	s.cur = nil
	s.mu.Unlock()
	s.inflight.Wait()
	s.closeFiles()
	_ = s.enc.Close()
	s.dec.Close()
	_ = s.lock.Close()
}

func stagingFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, stagingDirName))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// splitmix64 is a tiny deterministic generator: test data must not depend
// on math/rand's algorithms.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	g := splitmix64(seed)
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.next())
	}
	return b[:n]
}

// textBytes returns n deterministic bytes of compressible, text-like data.
func textBytes(seed uint64, n int) []byte {
	words := []string{"layer", "registry", "chunk", "pack", "the", "of", "usr/lib", "config", "manifest",
		"blob", "digest", "sha256", "index", "\n", "tar", "0000644", "root", "ustar", "bin", "etc/passwd"}
	g := splitmix64(seed)
	var buf bytes.Buffer
	buf.Grow(n + 32)
	for buf.Len() < n {
		v := g.next()
		buf.WriteString(words[v%uint64(len(words))])
		if v>>60 == 0 {
			buf.WriteString(" 0x")
			buf.WriteString(string("0123456789abcdef"[v>>8&15]))
		}
		buf.WriteByte(' ')
	}
	return buf.Bytes()[:n]
}

// readAll reads back every chunk of a Write and concatenates them, checking
// them against want.
func readAll(t testing.TB, s *Store, chunks []Chunk, locs map[ID]Location) []byte {
	t.Helper()
	var out []byte
	for i, c := range chunks {
		loc, ok := locs[c.ID]
		if c.Loc != nil {
			loc, ok = *c.Loc, true
		}
		if !ok {
			t.Fatalf("chunk %d (%s): no location", i, c.ID)
		}
		b, err := s.ReadChunk(context.Background(), loc, c.ID, nil)
		if err != nil {
			t.Fatalf("ReadChunk %d: %v", i, err)
		}
		if len(b) != int(c.RawLen) {
			t.Fatalf("chunk %d: %d bytes, want %d", i, len(b), c.RawLen)
		}
		out = append(out, b...)
	}
	return out
}

// locations collects the locations of the chunks a Write stored.
func locations(chunks []Chunk, into map[ID]Location) map[ID]Location {
	if into == nil {
		into = make(map[ID]Location)
	}
	for _, c := range chunks {
		if c.Loc != nil {
			into[c.ID] = *c.Loc
		}
	}
	return into
}

func mustWrite(t testing.TB, s *Store, data []byte, known func(ID) bool) []Chunk {
	t.Helper()
	chunks, size, err := s.Write(context.Background(), bytes.NewReader(data), known)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if size != int64(len(data)) {
		t.Fatalf("Write size %d, want %d", size, len(data))
	}
	return chunks
}
