package chunkstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The Backend contract suite is backendtest.Run; it runs on LocalBackend in
// backendtest's own tests, since chunkstore's tests cannot import it (import
// cycle).

func TestLocalBackendLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewLocalBackend(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "abcdef", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ab", "abcdef")); err != nil {
		t.Fatalf("object not fanned out: %v", err)
	}
	// Leftover temporary files and stray entries are not listed.
	if err := os.WriteFile(filepath.Join(dir, "ab", ".abcdef.tmp-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ab", "cdxx"), []byte("misplaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := b.List(ctx, func(name string, size int64) error { names = append(names, name); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"abcdef"}) {
		t.Errorf("List = %v", names)
	}

	// Adopt moves a file in.
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("adopted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Adopt(ctx, "cd01", src); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("adopted file still at its source: %v", err)
	}
	rc, err := b.ReadRange(ctx, "cd01", 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "adopted" {
		t.Fatalf("ReadRange after Adopt = %q, %v", got, err)
	}
	// adoptByCopy is the EXDEV fallback; exercise it directly.
	src2 := filepath.Join(t.TempDir(), "src2")
	if err := os.WriteFile(src2, []byte("copied"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.adoptByCopy(ctx, "cd02", src2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(src2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copied file still at its source: %v", err)
	}
	if n, err := b.Stat(ctx, "cd02"); err != nil || n != 6 {
		t.Errorf("Stat after adoptByCopy = %d, %v", n, err)
	}
}
