package ocihttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/chunkyard/chunkyard/registry"
)

// oneBlob is a registry holding one blob, linked into repository "a/b".
type oneBlob struct {
	Registry
	d    digest.Digest
	data string
}

func (o oneBlob) StatBlob(_ context.Context, repo string, d digest.Digest) (int64, error) {
	if repo != "a/b" || d != o.d {
		return 0, fmt.Errorf("%w: %s", registry.ErrBlobUnknown, d)
	}
	return int64(len(o.data)), nil
}

func (o oneBlob) OpenBlob(ctx context.Context, repo string, d digest.Digest, off, n int64) (io.ReadCloser, int64, error) {
	if _, err := o.StatBlob(ctx, repo, d); err != nil {
		return nil, 0, err
	}
	return io.NopCloser(strings.NewReader(o.data[off : off+n])), n, nil
}

// fakeRedirector redirects once told a blob was served whole.
type fakeRedirector struct {
	mu     sync.Mutex
	served map[digest.Digest]string // the bytes open gave
	asked  int
}

func (f *fakeRedirector) Location(_ context.Context, d digest.Digest, _ int64) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if _, ok := f.served[d]; ok {
		return "http://cache.example/" + d.Encoded(), true
	}
	return "", false
}

func (f *fakeRedirector) Served(d digest.Digest, _ int64, open func(context.Context) (io.ReadCloser, error)) {
	rc, err := open(context.Background())
	if err != nil {
		return
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	f.mu.Lock()
	f.served[d] = string(b)
	f.mu.Unlock()
}

// The redirect hook: a partial or HEAD request neither uploads nor is
// redirected, a whole GET hands the blob over, then GETs (ranges too) are
// redirected; an unknown blob or a repository it is not linked into is a
// 404 before the Redirector is asked.
func TestRedirectHook(t *testing.T) {
	data := strings.Repeat("x", 5000)
	d := digest.FromString(data)
	f := &fakeRedirector{served: map[digest.Digest]string{}}
	h := NewHandler(oneBlob{d: d, data: data}, Options{Redirect: f})
	do := func(method, path, rng string) *http.Response {
		req := httptest.NewRequest(method, path, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	u := "/v2/a/b/blobs/" + d.String()
	if r := do(http.MethodGet, u, "bytes=0-9"); r.StatusCode != http.StatusPartialContent || len(f.served) != 0 {
		t.Fatalf("range GET: %d, served %d", r.StatusCode, len(f.served))
	}
	if r := do(http.MethodHead, u, ""); r.StatusCode != http.StatusOK || len(f.served) != 0 {
		t.Fatalf("HEAD: %d, served %d", r.StatusCode, len(f.served))
	}
	if r := do(http.MethodGet, u, ""); r.StatusCode != http.StatusOK || f.served[d] != data {
		t.Fatalf("whole GET: %d, handed over %d bytes", r.StatusCode, len(f.served[d]))
	}
	for _, rng := range []string{"", "bytes=10-19"} {
		r := do(http.MethodGet, u, rng)
		if r.StatusCode != http.StatusTemporaryRedirect || r.Header.Get("Location") != "http://cache.example/"+d.Encoded() {
			t.Fatalf("GET %q after upload: %d Location %q", rng, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r := do(http.MethodHead, u, ""); r.StatusCode != http.StatusOK {
		t.Fatalf("HEAD after upload: %d", r.StatusCode)
	}
	asked := f.asked
	for _, p := range []string{"/v2/a/other/blobs/" + d.String(), "/v2/a/b/blobs/" + digest.FromString("nope").String()} {
		if r := do(http.MethodGet, p, ""); r.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if f.asked != asked {
		t.Fatal("the Redirector was asked about a blob the repository does not hold")
	}
}
