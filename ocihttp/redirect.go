package ocihttp

import (
	"context"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// Redirector sends blob GETs elsewhere (package redirect: a cache bucket or
// a CDN in front of it).
type Redirector interface {
	// Location returns where a GET of the blob d of size bytes may be
	// redirected; ok false: serve it directly.
	Location(ctx context.Context, d digest.Digest, size int64) (url string, ok bool)
	// Served says d was just served whole; open reads it again.
	Served(d digest.Digest, size int64, open func(context.Context) (io.ReadCloser, error))
}

// redirected answers a GET of d with a 307 when the Redirector has it. It
// runs inside the handler, after the access check and the repository's
// link check (StatBlob), so a redirect never skips either. Range GETs are
// redirected too: the client sends its Range to the new location.
func (s *server) redirected(w http.ResponseWriter, r *http.Request, d digest.Digest, size int64) bool {
	if s.redirect == nil || r.Method != http.MethodGet {
		return false
	}
	url, ok := s.redirect.Location(r.Context(), d, size)
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Location", url)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Cache-Control", "no-store") // the URL expires
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// servedWhole hands a blob served whole to the Redirector for upload.
func (s *server) servedWhole(repo string, d digest.Digest, size int64) {
	if s.redirect == nil {
		return
	}
	s.redirect.Served(d, size, func(ctx context.Context) (io.ReadCloser, error) {
		rc, _, err := s.reg.OpenBlob(ctx, repo, d, 0, size)
		return rc, err
	})
}
