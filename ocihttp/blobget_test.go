package ocihttp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/chunkyard/chunkyard/registry"
	"github.com/opencontainers/go-digest"
)

// vanishingBlob is a registry whose blob is there at the stat and gone at
// the open: garbage collection removed the link in between.
type vanishingBlob struct {
	Registry
	size int64
}

func (v vanishingBlob) StatBlob(context.Context, string, digest.Digest) (int64, error) {
	return v.size, nil
}

func (v vanishingBlob) OpenBlob(_ context.Context, _ string, d digest.Digest, _, _ int64) (io.ReadCloser, int64, error) {
	return nil, 0, fmt.Errorf("%w: %s", registry.ErrBlobUnknown, d)
}

// A blob GET whose open fails is a clean error: the blob's length and
// digest headers must not describe the JSON error body.
func TestBlobVanishingBetweenStatAndOpen(t *testing.T) {
	h := NewHandler(vanishingBlob{size: 1000}, Options{})
	d := digest.FromString("gone")
	for _, rng := range []string{"", "bytes=10-19"} {
		req := httptest.NewRequest(http.MethodGet, "/v2/a/b/blobs/"+d.String(), nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("range %q: status %d, want 404", rng, res.StatusCode)
		}
		if cl := res.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
			t.Errorf("range %q: Content-Length %s for a body of %d bytes", rng, cl, len(body))
		}
		for _, k := range []string{"Docker-Content-Digest", "ETag", "Content-Range"} {
			if v := res.Header.Get(k); v != "" {
				t.Errorf("range %q: error response carries the blob's %s: %s", rng, k, v)
			}
		}
		var eb errorBody
		if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 || eb.Errors[0].Code != "BLOB_UNKNOWN" {
			t.Errorf("range %q: body %q, want BLOB_UNKNOWN JSON", rng, body)
		}
	}
}
