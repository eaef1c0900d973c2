// Package backendtest is the test suite every chunkstore.Backend passes.
package backendtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
)

// Run checks the chunkstore.Backend contract. Every backend (local, s3,
// wrappers) should pass it: newBackend returns a fresh, empty backend.
func Run(t *testing.T, newBackend func(t *testing.T) chunkstore.Backend) {
	ctx := context.Background()
	put := func(t *testing.T, b chunkstore.Backend, name string, data []byte) {
		t.Helper()
		if err := b.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
	}
	read := func(t *testing.T, b chunkstore.Backend, name string, off, n int64) ([]byte, error) {
		t.Helper()
		rc, err := b.ReadRange(ctx, name, off, n)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	list := func(t *testing.T, b chunkstore.Backend) map[string]int64 {
		t.Helper()
		got := make(map[string]int64)
		if err := b.List(ctx, func(name string, size int64) error {
			if _, dup := got[name]; dup {
				return fmt.Errorf("%s listed twice", name)
			}
			got[name] = size
			return nil
		}); err != nil {
			t.Fatalf("List: %v", err)
		}
		return got
	}

	t.Run("PutReadRange", func(t *testing.T) {
		b := newBackend(t)
		data := RandomBytes(1, 100<<10)
		put(t, b, "0123456789abcdef", data)
		tests := []struct {
			name    string
			off, n  int64
			wantErr bool
		}{
			{"whole", 0, int64(len(data)), false},
			{"prefix", 0, 10, false},
			{"middle", 5000, 70000, false},
			{"suffix", int64(len(data)) - 16, 16, false},
			{"empty at end", int64(len(data)), 0, false},
			{"past end", int64(len(data)) - 1, 2, true},
			{"negative offset", -1, 1, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := read(t, b, "0123456789abcdef", tt.off, tt.n)
				if tt.wantErr {
					if err == nil {
						t.Fatal("no error")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data[tt.off:tt.off+tt.n]) {
					t.Fatal("wrong bytes")
				}
			})
		}
	})

	t.Run("PutReplaces", func(t *testing.T) {
		b := newBackend(t)
		put(t, b, "aa00", []byte("first version"))
		put(t, b, "aa00", []byte("second"))
		got, err := read(t, b, "aa00", 0, 6)
		if err != nil || string(got) != "second" {
			t.Fatalf("got %q, %v", got, err)
		}
		if l := list(t, b); len(l) != 1 || l["aa00"] != 6 {
			t.Fatalf("List = %v", l)
		}
	})

	t.Run("PutShortReader", func(t *testing.T) {
		b := newBackend(t)
		if err := b.Put(ctx, "short", bytes.NewReader([]byte("abc")), 10); err == nil {
			t.Fatal("Put of a short reader succeeded")
		}
		if l := list(t, b); len(l) != 0 {
			t.Fatalf("failed Put left objects: %v", l)
		}
	})

	t.Run("NotExist", func(t *testing.T) {
		b := newBackend(t)
		if _, err := read(t, b, "missing", 0, 1); !errors.Is(err, chunkstore.ErrNotExist) {
			t.Errorf("ReadRange of missing object: %v, want chunkstore.ErrNotExist", err)
		}
		if err := b.Delete(ctx, "missing"); err != nil {
			t.Errorf("Delete of missing object: %v, want nil", err)
		}
		if st, ok := b.(chunkstore.Stater); ok {
			if _, err := st.Stat(ctx, "missing"); !errors.Is(err, chunkstore.ErrNotExist) {
				t.Errorf("Stat of missing object: %v, want chunkstore.ErrNotExist", err)
			}
		}
	})

	t.Run("ListDelete", func(t *testing.T) {
		b := newBackend(t)
		want := map[string]int64{}
		for i := range 20 {
			name := fmt.Sprintf("%02x%030x", i*13%256, i)
			data := RandomBytes(uint64(i), i*100)
			put(t, b, name, data)
			want[name] = int64(len(data))
		}
		if got := list(t, b); !maps.Equal(got, want) {
			t.Fatalf("List = %v, want %v", got, want)
		}
		if st, ok := b.(chunkstore.Stater); ok {
			for name, size := range want {
				if got, err := st.Stat(ctx, name); err != nil || got != size {
					t.Fatalf("Stat %s = %d, %v; want %d", name, got, err, size)
				}
			}
		}
		var deleted []string
		for name := range want {
			if len(deleted) == 7 {
				break
			}
			if err := b.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
			deleted = append(deleted, name)
		}
		for _, name := range deleted {
			delete(want, name)
			if _, err := read(t, b, name, 0, 0); !errors.Is(err, chunkstore.ErrNotExist) {
				t.Errorf("ReadRange after Delete: %v, want chunkstore.ErrNotExist", err)
			}
		}
		if got := list(t, b); !maps.Equal(got, want) {
			t.Fatalf("List after Delete = %v, want %v", got, want)
		}
		// An error from fn stops the listing.
		stop := errors.New("stop")
		n := 0
		err := b.List(ctx, func(string, int64) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("List with failing fn: %v after %d calls", err, n)
		}
	})

	t.Run("InvalidNames", func(t *testing.T) {
		b := newBackend(t)
		for _, name := range []string{"", "a", "../etc", "a/b", ".hidden", "with space"} {
			if err := b.Put(ctx, name, bytes.NewReader(nil), 0); err == nil {
				t.Errorf("Put(%q) succeeded", name)
			}
		}
	})

	t.Run("Cancelled", func(t *testing.T) {
		b := newBackend(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := b.Put(cctx, "cancelled", bytes.NewReader([]byte("x")), 1); !errors.Is(err, context.Canceled) {
			t.Errorf("Put with cancelled ctx: %v", err)
		}
		if err := b.List(cctx, func(string, int64) error { return nil }); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("List with cancelled ctx: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		b := newBackend(t)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("cc%02d", i)
				data := RandomBytes(uint64(i), 10000)
				if err := b.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
					errs[i] = err
					return
				}
				got, err := read(t, b, name, 0, int64(len(data)))
				if err == nil && !bytes.Equal(got, data) {
					err = errors.New("wrong bytes")
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}
	})
}

// RandomBytes returns n deterministic pseudo-random bytes (splitmix64), for
// backend tests here and in other packages.
func RandomBytes(seed uint64, n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[i:], z^(z>>31))
	}
	return b[:n]
}

// Logger returns a logger writing to t's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
