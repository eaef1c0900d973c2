package ocihttp

import (
	"net/http/httptest"
	"testing"
)

func TestActionFor(t *testing.T) {
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/v2/a/b/manifests/v1", "pull"},
		{"HEAD", "/v2/a/blobs/sha256:x", "pull"},
		{"GET", "/v2/a/tags/list", "pull"},
		{"GET", "/v2/a/referrers/sha256:x", "pull"},
		{"GET", "/chunkyard/v1/a/scan/v1", "pull"},
		{"PUT", "/v2/a/manifests/v1", "push"},
		{"POST", "/v2/a/blobs/uploads/", "push"},
		{"PATCH", "/v2/a/blobs/uploads/id", "push"},
		{"PUT", "/v2/a/blobs/uploads/id", "push"},
		{"GET", "/v2/a/blobs/uploads/id", "push"},
		{"DELETE", "/v2/a/blobs/uploads/id", "push"},
		{"DELETE", "/v2/a/manifests/v1", "delete"},
		{"DELETE", "/v2/a/blobs/sha256:x", "delete"},
	} {
		if got := actionFor(httptest.NewRequest(c.method, c.path, nil)); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
}
