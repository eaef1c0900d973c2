package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/backendtest"
	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// testOptions are Options for srv with a test logger, under prefix.
func testOptions(t testing.TB, srv *s3test.Server, prefix string) Options {
	return Options{
		Bucket:    srv.Bucket,
		Prefix:    prefix,
		Endpoint:  srv.Endpoint,
		Region:    srv.Region,
		PathStyle: true,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		Logger:    backendtest.Logger(t),
	}
}

func newBackend(t testing.TB, opts Options) *Backend {
	t.Helper()
	b, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestBackendSuite(t *testing.T) {
	srv := s3test.Start(t)
	n := 0
	backendtest.Run(t, func(t *testing.T) chunkstore.Backend {
		n++ // a fresh prefix is a fresh, empty backend
		return newBackend(t, testOptions(t, srv, fmt.Sprintf("suite-%d", n)))
	})
}

func TestPrefix(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	a := newBackend(t, testOptions(t, srv, "a"))
	ab := newBackend(t, testOptions(t, srv, "a/b/"))
	root := newBackend(t, testOptions(t, srv, ""))
	put(t, a, "pack1", []byte("in a"))
	put(t, ab, "pack2", []byte("in a/b"))
	put(t, root, "pack3", []byte("at the root"))
	for _, tt := range []struct {
		b    *Backend
		want string
	}{{a, "pack1"}, {ab, "pack2"}, {root, "pack3"}} {
		var names []string
		if err := tt.b.List(ctx, func(name string, _ int64) error { names = append(names, name); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(names) != 1 || names[0] != tt.want {
			t.Errorf("prefix %q lists %v, want [%s]", tt.b.prefix, names, tt.want)
		}
	}
	objects, size, err := a.Usage(ctx)
	if err != nil || objects != 1 || size != 4 {
		t.Errorf("Usage = %d, %d, %v; want 1, 4", objects, size, err)
	}
}

func TestNewErrors(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	opts := testOptions(t, srv, "")
	opts.Bucket = "no-such-bucket"
	if _, err := New(ctx, opts); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("New on a missing bucket: %v", err)
	}
	opts = testOptions(t, srv, "")
	opts.SecretKey = "wrong"
	opts.MaxAttempts = 1
	if _, err := New(ctx, opts); err == nil {
		t.Error("New with a wrong secret key succeeded")
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.Bucket = "" },
		func(o *Options) { o.PartSize = 1 << 20 },
		func(o *Options) { o.MaxAttempts = -1 },
		func(o *Options) { o.SecretKey = "" },
	} {
		opts := testOptions(t, srv, "")
		bad(&opts)
		if _, err := New(ctx, opts); err == nil {
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}

func put(t testing.TB, b chunkstore.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", name, err)
	}
}

func readAll(ctx context.Context, b chunkstore.Backend, name string, off, n int64) ([]byte, error) {
	rc, err := b.ReadRange(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func exists(t testing.TB, b *Backend, name string) bool {
	t.Helper()
	_, err := b.Stat(context.Background(), name)
	if err != nil && !errors.Is(err, chunkstore.ErrNotExist) {
		t.Fatalf("Stat %s: %v", name, err)
	}
	return err == nil
}

// within fails t if fn takes longer than limit, and returns fn's error.
func within(t *testing.T, limit time.Duration, what string, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %v, want at most %v", what, d, limit)
	}
	return err
}
