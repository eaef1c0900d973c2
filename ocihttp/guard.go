package ocihttp

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/chunkyard/chunkyard/ocihttp/auth"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
)

// actionFor is the action a repository request needs: anything on an
// upload session push (cancelling one's own upload, or asking its status,
// is part of pushing); other reads pull; manifest pushes push; deletes of
// blobs and manifests delete.
func actionFor(r *http.Request) string {
	// The route's template, not the path: a repository may be named
	// "x/blobs/uploads/y".
	where := r.URL.Path
	if route := mux.CurrentRoute(r); route != nil {
		if tpl, err := route.GetPathTemplate(); err == nil {
			where = tpl
		}
	}
	if strings.Contains(where, "/blobs/uploads/") {
		return auth.Push
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return auth.Pull
	case http.MethodDelete:
		return auth.Delete
	}
	return auth.Push
}

// mount links blob d from repository from into repo, for a caller who
// may push to repo (checked by the route). With access control on, a
// mount names a source the caller can read, or none is done: a mount
// without "from" would link any digest stored anywhere (someone else's
// content) and one from an unreadable repository would tell whether the
// blob is there. Either way the answer is a plain upload session (202),
// as the spec allows, the same whether the blob exists or not.
func (s *server) mount(ctx context.Context, repo, from string, d digest.Digest) error {
	if s.auth.Restricted() && (from == "" || !s.auth.CanRead(ctx, from)) {
		return fmt.Errorf("%w: %s (not mountable for this caller)", registry.ErrBlobUnknown, d)
	}
	return s.reg.MountBlob(ctx, repo, from, d)
}

// readableCatalog is the catalog page of the repositories the caller may
// read: pages of the full catalog are filtered until n are found. The
// next page starts after the last repository returned, so nothing is
// skipped.
func (s *server) readableCatalog(ctx context.Context, last string, n int) ([]string, bool, error) {
	if !s.auth.Restricted() {
		return s.reg.Catalog(ctx, last, n)
	}
	if n == 0 {
		return nil, false, nil
	}
	var out []string
	for {
		page := 1000
		if n > 0 {
			page = max(n-len(out), 100)
		}
		repos, more, err := s.reg.Catalog(ctx, last, page)
		if err != nil {
			return nil, false, err
		}
		for i, r := range repos {
			if !s.auth.CanRead(ctx, r) {
				continue
			}
			out = append(out, r)
			if n > 0 && len(out) == n {
				return out, more || i < len(repos)-1, nil
			}
		}
		if !more || len(repos) == 0 {
			return out, false, nil
		}
		last = repos[len(repos)-1]
	}
}
