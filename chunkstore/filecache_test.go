package chunkstore

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestFileCache(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenFileCache(dir, 100, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	write := func(key string, n int) {
		t.Helper()
		w, err := c.Create()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(bytes.Repeat([]byte{key[0]}, n))
		if err := w.Commit(key); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 40)
	write("b", 40)
	if e, ok := c.Open("a"); !ok || e.Size != 40 || !e.Verified {
		t.Fatalf("a missing or not verified: %+v", e)
	} else {
		b, _ := io.ReadAll(e)
		e.Close()
		if !bytes.Equal(b, bytes.Repeat([]byte("a"), 40)) {
			t.Fatal("a differs")
		}
	}
	write("c", 40) // evicts b, the least recently used
	if _, ok := c.Open("b"); ok {
		t.Fatal("b not evicted")
	}
	if n, size := c.Usage(); n != 2 || size != 80 {
		t.Fatalf("usage %d entries %d bytes", n, size)
	}
	write("huge", 101) // larger than the cache: not kept
	if _, ok := c.Open("huge"); ok {
		t.Fatal("an entry larger than the cache was kept")
	}
	// An aborted entry leaves nothing; bad keys are refused.
	w, _ := c.Create()
	w.Write([]byte("x"))
	w.Abort()
	c.Put("../escape", []byte("x"))
	c.Put(".tmp-x", []byte("x"))
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("cache dir holds %d files, want 2", len(entries))
	}
	// Reopening keeps the entries; stray temporary files go.
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("junk"), 0o600)
	c2, err := OpenFileCache(dir, 100, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n, size := c2.Usage(); n != 2 || size != 80 {
		t.Fatalf("reopened usage %d entries %d bytes", n, size)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Fatal("stray temporary file kept")
	}
	// Entries found on disk are not trusted until checked.
	if e, ok := c2.Open("a"); !ok || e.Verified {
		t.Fatalf("entry found at open: %+v, want present and unverified", e)
	} else {
		e.Close()
	}
	c2.MarkVerified("a")
	if e, ok := c2.Open("a"); !ok || !e.Verified {
		t.Fatal("MarkVerified did not stick")
	} else {
		e.Close()
	}
	var nilCache *FileCache
	if _, ok := nilCache.Get("a"); ok {
		t.Fatal("nil cache hit")
	}
	nilCache.Put("a", []byte("x"))
}
