package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
)

// UploadSizer tells how many bytes an upload session holds so far (the
// registry service).
type UploadSizer interface {
	UploadStatus(ctx context.Context, repo, id string) (int64, error)
}

// Quota wraps the registry API with the quota check: a request that
// brings bytes into a namespace with a quota (an upload's POST, PATCH or
// finishing PUT, a manifest's PUT) is refused with 403 DENIED if the
// namespace's estimated unique bytes, plus the upload session's bytes so
// far, plus the request's body would pass the quota. With a
// Content-Length the check is made before a byte is read (so before the
// upload is spooled); without one the body is counted as it streams and
// the request is refused when the count passes what is left, before the
// upload is finished (so before anything is committed). Namespaces
// without a quota pass through untouched.
//
// The estimate (UsageTracker) is the namespace's unique bytes at the last
// computation plus the bytes of the uploads admitted since, counted as
// received: it over-estimates what pushes add (deduplicated chunks,
// compression and mounts cost no unique bytes) until the next computation
// corrects it, and under-estimates only where another namespace's
// deletions leave this one the sole holder of chunks they shared (its
// unique bytes grow without a push) until then.
func (u *UsageTracker) Quota(next http.Handler, uploads UploadSizer) http.Handler {
	if len(u.ns) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, finishing, ok := quotaRoute(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ns := refgraph.Namespace(rt.Repo)
		u.mu.Lock()
		e := u.ns[ns]
		u.mu.Unlock()
		if e == nil {
			next.ServeHTTP(w, r)
			return
		}
		var session int64
		if rt.Upload != "" {
			n, err := uploads.UploadStatus(r.Context(), rt.Repo, rt.Upload)
			if err != nil { // an unknown session: the registry answers it
				next.ServeHTTP(w, r)
				return
			}
			session = n
		}
		u.mu.Lock()
		left := e.limit - e.estimate() - session
		known := r.ContentLength
		if known >= 0 && known > left {
			e.refusals++
			est := e.estimate()
			u.mu.Unlock()
			denyQuota(w, ns, e.limit, est, session+known)
			return
		}
		var reserved int64
		if finishing && known >= 0 {
			reserved = session + known
			e.inFlight += reserved
		}
		u.mu.Unlock()
		body := &limitedBody{r: r.Body, left: left}
		r.Body = body
		qw := &quotaWriter{ResponseWriter: w, body: body, deny: func() {
			u.mu.Lock()
			e.refusals++
			est := e.estimate()
			u.mu.Unlock()
			denyQuota(w, ns, e.limit, est, session+body.n.Load())
		}}
		defer func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			e.inFlight -= reserved
			if finishing && qw.status/100 == 2 && !body.tripped.Load() {
				e.admitted += session + body.n.Load()
			}
		}()
		next.ServeHTTP(qw, r)
		if !qw.written && body.tripped.Load() {
			qw.WriteHeader(http.StatusForbidden) // nothing answered yet: DENIED
		}
	})
}

// quotaRoute reports whether r brings bytes into a repository, and whether
// it finishes an upload (or pushes a manifest): what commits them.
func quotaRoute(r *http.Request) (rt Route, finishing, ok bool) {
	if r.Method != http.MethodPost && r.Method != http.MethodPatch && r.Method != http.MethodPut {
		return rt, false, false
	}
	rt = ParseRoute(r.URL.EscapedPath())
	switch {
	case rt.Template == RouteUploads && r.Method == http.MethodPost:
		q := r.URL.Query()
		return rt, q.Get("digest") != "" && q.Get("mount") == "", true
	case rt.Template == RouteUpload && r.Method == http.MethodPatch:
		return rt, false, true
	case rt.Template == RouteUpload && r.Method == http.MethodPut:
		return rt, true, true
	case rt.Template == RouteManifest && r.Method == http.MethodPut:
		return rt, true, true
	}
	return rt, false, false
}

// errQuota ends the body of a request that passed its namespace's quota:
// a client error to the registry (nothing logged as a failure), answered
// DENIED by quotaWriter.
var errQuota = fmt.Errorf("%w: namespace quota exceeded", registry.ErrTooLarge)

// limitedBody counts a request body and fails once it passes left bytes.
type limitedBody struct {
	r       io.ReadCloser
	left    int64
	n       atomic.Int64
	tripped atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.tripped.Load() {
		return 0, errQuota
	}
	n, err := b.r.Read(p)
	if b.n.Add(int64(n)) > b.left {
		b.tripped.Store(true)
		return 0, errQuota
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }

// quotaWriter answers DENIED instead of whatever the registry answers to a
// body the quota cut short, and records the status.
type quotaWriter struct {
	http.ResponseWriter
	body    *limitedBody
	deny    func()
	status  int
	denied  bool
	written bool
}

func (w *quotaWriter) WriteHeader(status int) {
	if w.written {
		return
	}
	w.written = true
	if w.body.tripped.Load() {
		w.denied = true
		w.status = http.StatusForbidden
		w.deny()
		return
	}
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *quotaWriter) Write(p []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	if w.denied {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *quotaWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// denyQuota answers 403 DENIED with the numbers.
func denyQuota(w http.ResponseWriter, ns string, limit, used, adding int64) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(http.StatusForbidden)
	msg := fmt.Sprintf("namespace %q is over its storage quota: %d unique bytes allowed, about %d used, this upload brings %d", ns, limit, used, adding)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"code": "DENIED", "message": msg,
		"detail": map[string]any{"namespace": ns, "limit_bytes": limit, "estimate_bytes": used, "upload_bytes": adding}}}})
}

// ParseQuota parses a --quota value, NAMESPACE=SIZE (SIZE as parseSize
// reads it).
func ParseQuota(v string, parseSize func(string) (int64, error)) (string, int64, error) {
	ns, size, ok := strings.Cut(v, "=")
	if !ok || ns == "" || strings.Contains(ns, "/") {
		return "", 0, fmt.Errorf("quota %q: want NAMESPACE=SIZE, the namespace being a repository name's first component", v)
	}
	n, err := parseSize(size)
	if err != nil {
		return "", 0, fmt.Errorf("quota %q: %w", v, err)
	}
	if n < 0 {
		return "", 0, fmt.Errorf("quota %q: negative size", v)
	}
	return ns, n, nil
}

func sortQuotas(q []QuotaState) {
	slices.SortFunc(q, func(a, b QuotaState) int { return strings.Compare(a.Namespace, b.Namespace) })
}
