// Package ocihttp owns chunkyard's HTTP surface: the OCI distribution-spec
// v1.1 API (routes, headers, status codes, error JSON). It holds no storage
// logic; every handler calls the small Registry interface.
package ocihttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/ocihttp/auth"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Registry is what the handlers need of the registry service
// (*registry.Service).
type Registry interface {
	StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error)
	OpenBlob(ctx context.Context, repo string, d digest.Digest, off, length int64) (io.ReadCloser, int64, error)
	DeleteBlob(ctx context.Context, repo string, d digest.Digest) error
	MountBlob(ctx context.Context, repo, from string, d digest.Digest) error

	StartUpload(ctx context.Context, repo string) (string, error)
	UploadStatus(ctx context.Context, repo, id string) (int64, error)
	AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (int64, error)
	FinishUpload(ctx context.Context, repo, id string, d digest.Digest, offset int64, r io.Reader) error
	CancelUpload(ctx context.Context, repo, id string) error

	StatManifest(ctx context.Context, repo, ref string) (registry.Manifest, error)
	GetManifest(ctx context.Context, repo, ref string) (registry.Manifest, error)
	PutManifest(ctx context.Context, repo, ref, contentType string, content []byte) (d, subject digest.Digest, err error)
	DeleteManifest(ctx context.Context, repo, ref string) error

	Tags(ctx context.Context, repo, last string, n int) ([]string, bool, error)
	Catalog(ctx context.Context, last string, n int) ([]string, bool, error)
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
}

var _ Registry = (*registry.Service)(nil)

// Options configure the handler.
type Options struct {
	Logger          *slog.Logger
	MaxManifestSize int64 // default 4 MiB
	// MaxManifestsInFlight bounds the manifest pushes read and checked
	// at once (each holds its body, up to MaxManifestSize, and its decoded
	// form); more wait. Default 2 per CPU, at least 4.
	MaxManifestsInFlight int
	// IOTimeout is how long one read of a request body or one write of a
	// response may wait for the client: a client that sends or takes
	// nothing for that long is cut off, whatever the size of the
	// transfer (0: no limit). The server's own read-header and idle
	// timeouts cover the time between requests.
	IOTimeout time.Duration
	// Auth, if set, decides who may do what (guard.go); nil: everyone
	// everything.
	Auth *auth.Authenticator
	// Redirect, if set, lets blob GETs be answered with a 307 to a cache
	// bucket or CDN (redirect.go).
	Redirect Redirector
}

type server struct {
	reg       Registry
	log       *slog.Logger
	maxMan    int64
	ioTimeout time.Duration
	manifests chan struct{} // semaphore of manifest pushes in flight
	auth      *auth.Authenticator
	redirect  Redirector
}

// name matches any path segments; handlers validate it against the spec's
// grammar so that a bad name is answered NAME_INVALID, not 404.
const name = "{name:[^_][^?#]*}"

// NewHandler returns the /v2/ API over reg.
func NewHandler(reg Registry, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = 4 << 20
	}
	if opts.MaxManifestsInFlight <= 0 {
		opts.MaxManifestsInFlight = max(4, 2*runtime.GOMAXPROCS(0))
	}
	s := &server{reg: reg, log: opts.Logger, maxMan: opts.MaxManifestSize, ioTimeout: opts.IOTimeout,
		manifests: make(chan struct{}, opts.MaxManifestsInFlight), auth: opts.Auth, redirect: opts.Redirect}
	r := mux.NewRouter()
	// Match on the escaped path and never clean it: "..%2f.." stays inside
	// one variable (a tag, a digest, an upload id), where validation
	// answers it with the spec's code, and no path is ever redirected.
	r.SkipClean(true)
	r.UseEncodedPath()
	v2 := r.PathPrefix("/v2").Subrouter()
	// The route table. Upload routes come before blob routes.
	v2.HandleFunc("/", s.ping).Methods(http.MethodGet, http.MethodHead)
	v2.HandleFunc("/_catalog", s.catalog).Methods(http.MethodGet)
	v2.HandleFunc("/"+name+"/tags/list", s.repo(s.tags)).Methods(http.MethodGet)
	v2.HandleFunc("/"+name+"/manifests/{reference}", s.repo(s.getManifest)).Methods(http.MethodGet, http.MethodHead)
	v2.HandleFunc("/"+name+"/manifests/{reference}", s.repo(s.putManifest)).Methods(http.MethodPut)
	v2.HandleFunc("/"+name+"/manifests/{reference}", s.repo(s.deleteManifest)).Methods(http.MethodDelete)
	v2.HandleFunc("/"+name+"/blobs/uploads/", s.repo(s.startUpload)).Methods(http.MethodPost)
	v2.HandleFunc("/"+name+"/blobs/uploads/{uuid}", s.repo(s.uploadStatus)).Methods(http.MethodGet)
	v2.HandleFunc("/"+name+"/blobs/uploads/{uuid}", s.repo(s.patchUpload)).Methods(http.MethodPatch)
	v2.HandleFunc("/"+name+"/blobs/uploads/{uuid}", s.repo(s.putUpload)).Methods(http.MethodPut)
	v2.HandleFunc("/"+name+"/blobs/uploads/{uuid}", s.repo(s.cancelUpload)).Methods(http.MethodDelete)
	v2.HandleFunc("/"+name+"/blobs/{digest}", s.repo(s.getBlob)).Methods(http.MethodGet, http.MethodHead)
	v2.HandleFunc("/"+name+"/blobs/{digest}", s.repo(s.deleteBlob)).Methods(http.MethodDelete)
	v2.HandleFunc("/"+name+"/referrers/{digest}", s.repo(s.referrers)).Methods(http.MethodGet)
	r.HandleFunc("/chunkyard/v1/"+name+"/scan/{reference}", s.repo(s.scanReport)).Methods(http.MethodGet) // scan.go
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if badSegments(r.URL.EscapedPath()) {
			writeCode(w, http.StatusBadRequest, "NAME_INVALID", "the path holds empty, \".\" or \"..\" segments")
			return
		}
		writeCode(w, http.StatusNotFound, "UNSUPPORTED", "no such endpoint of the distribution API")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeCode(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
	})
	return s.logged(r)
}

// logged sets the API version header, the I/O progress deadlines, and
// logs each request at debug.
func (s *server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if s.ioTimeout > 0 {
			// A deadline outlives its request on a kept-alive connection:
			// each request starts, and ends (the server's final flush),
			// with a fresh one.
			rc := http.NewResponseController(w)
			rc.SetWriteDeadline(start.Add(s.ioTimeout))
			defer func() { rc.SetWriteDeadline(time.Now().Add(s.ioTimeout)) }()
			w = &deadlineWriter{ResponseWriter: w, rc: rc, timeout: s.ioTimeout}
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: s.ioTimeout}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"bytes", sw.n, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadlineWriter gives each write of the response its own deadline, so a
// client that stops reading is cut off after the timeout, however long
// the transfer as a whole takes.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// deadlineBody gives each read of the request body its own deadline.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.ReadCloser.Read(p)
}

// repoHandler is a handler for one repository; it returns its error to be
// written in one place.
type repoHandler func(w http.ResponseWriter, r *http.Request, repo string) error

// badSegments reports whether an escaped path has an empty, "." or ".."
// segment, escaped or not.
func badSegments(path string) bool {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range segs {
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		if seg == "." || seg == ".." || (seg == "" && i < len(segs)-1) {
			return true
		}
	}
	return false
}

// pathVar returns the route variable key of r, unescaped (routes match the
// escaped path); a bad escape is answered as the variable's own error.
func pathVar(r *http.Request, key string) (string, error) {
	v, err := url.PathUnescape(mux.Vars(r)[key])
	if err != nil {
		return "", fmt.Errorf("bad escape in %s %q: %w", key, mux.Vars(r)[key], err)
	}
	return v, nil
}

func (s *server) repo(h repoHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		repo, err := pathVar(r, "name")
		if err != nil {
			err = fmt.Errorf("%w: %v", registry.ErrNameInvalid, err)
		} else {
			err = registry.ValidateName(repo)
		}
		if err == nil && !s.auth.Check(w, r, repo, actionFor(r)) {
			return // guard.go
		}
		if err == nil {
			err = h(w, r, repo)
		}
		if err != nil {
			writeError(w, r, s.log, err)
		}
	}
}

func (s *server) ping(w http.ResponseWriter, r *http.Request) {
	if !s.auth.CheckPing(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}")
}

// ---- blobs ----

// digestVar parses the route's digest variable.
func digestVar(r *http.Request) (digest.Digest, error) {
	v, err := pathVar(r, "digest")
	if err != nil {
		return "", fmt.Errorf("%w: %v", registry.ErrDigestInvalid, err)
	}
	return parseDigest(v)
}

// uploadVar returns the route's upload id (validated by the service).
func uploadVar(r *http.Request) (string, error) {
	v, err := pathVar(r, "uuid")
	if err != nil {
		return "", fmt.Errorf("%w: %v", registry.ErrBlobUploadUnknown, err)
	}
	return v, nil
}

// referenceVar returns the route's manifest reference (validated by the
// service).
func referenceVar(r *http.Request) (string, error) {
	v, err := pathVar(r, "reference")
	if err != nil {
		return "", fmt.Errorf("%w: %v", registry.ErrTagInvalid, err)
	}
	return v, nil
}

func parseDigest(v string) (digest.Digest, error) {
	d, err := digest.Parse(v)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", registry.ErrDigestInvalid, v, err)
	}
	return d, nil
}

func (s *server) getBlob(w http.ResponseWriter, r *http.Request, repo string) error {
	d, err := digestVar(r)
	if err != nil {
		return err
	}
	size, err := s.reg.StatBlob(r.Context(), repo, d)
	if err != nil {
		return err
	}
	off, length, partial, err := parseRange(r.Header.Get("Range"), size)
	if err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		return err
	}
	if s.redirected(w, r, d, size) { // redirect.go
		return nil
	}
	// Open before any header describes the blob: garbage collection may
	// remove the link between the stat and the open, and the answer must
	// then be a clean error, not a 404 claiming the blob's length.
	var rc io.ReadCloser
	if r.Method != http.MethodHead {
		if rc, _, err = s.reg.OpenBlob(r.Context(), repo, d, off, length); err != nil {
			return err
		}
		defer rc.Close()
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+length-1, size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if rc == nil {
		return nil
	}
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent: abort the connection so the client cannot
		// take a short or corrupt body for the blob.
		if r.Context().Err() == nil {
			s.log.Error("blob read failed mid-response; aborting", "repo", repo, "digest", d, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	if !partial {
		s.servedWhole(repo, d, size) // redirect.go
	}
	return nil
}

// parseRange parses a single "bytes=a-b", "bytes=a-" or "bytes=-n" range.
// An absent header means the whole blob.
func parseRange(v string, size int64) (off, length int64, partial bool, err error) {
	if v == "" {
		return 0, size, false, nil
	}
	bad := fmt.Errorf("%w: range %q of %d bytes", registry.ErrRangeInvalid, v, size)
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false, bad
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false, bad
	}
	if first == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false, bad
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	off, err = strconv.ParseInt(first, 10, 64)
	if err != nil || off < 0 || off >= size {
		return 0, 0, false, bad
	}
	end := size - 1
	if last != "" {
		if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < off {
			return 0, 0, false, bad
		}
		end = min(end, size-1)
	}
	return off, end - off + 1, true, nil
}

func (s *server) deleteBlob(w http.ResponseWriter, r *http.Request, repo string) error {
	d, err := digestVar(r)
	if err != nil {
		return err
	}
	if err := s.reg.DeleteBlob(r.Context(), repo, d); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// ---- uploads ----

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func uploadAccepted(w http.ResponseWriter, repo, id string, size int64, status int) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	h.Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (s *server) startUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	q := r.URL.Query()
	ctx := r.Context()
	if mount := q.Get("mount"); mount != "" {
		d, err := parseDigest(mount)
		if err != nil {
			return err
		}
		err = s.mount(ctx, repo, q.Get("from"), d) // guard.go
		switch {
		case err == nil:
			blobCreated(w, repo, d)
			return nil
		case errors.Is(err, registry.ErrBlobUnknown), errors.Is(err, registry.ErrNameInvalid):
			// Not mountable: fall back to an upload session.
		default:
			return err
		}
	}
	id, err := s.reg.StartUpload(ctx, repo)
	if err != nil {
		return err
	}
	if dv := q.Get("digest"); dv != "" && q.Get("mount") == "" {
		d, err := parseDigest(dv)
		if err != nil {
			s.reg.CancelUpload(ctx, repo, id)
			return err
		}
		if err := s.reg.FinishUpload(ctx, repo, id, d, -1, r.Body); err != nil {
			return err
		}
		blobCreated(w, repo, d)
		return nil
	}
	uploadAccepted(w, repo, id, 0, http.StatusAccepted)
	return nil
}

func (s *server) uploadStatus(w http.ResponseWriter, r *http.Request, repo string) error {
	id, err := uploadVar(r)
	if err != nil {
		return err
	}
	size, err := s.reg.UploadStatus(r.Context(), repo, id)
	if err != nil {
		return err
	}
	uploadAccepted(w, repo, id, size, http.StatusNoContent)
	return nil
}

// contentRangeStart returns the start of a "start-end" Content-Range, or -1
// if the header is absent.
func contentRangeStart(r *http.Request) (int64, error) {
	v := r.Header.Get("Content-Range")
	if v == "" {
		return -1, nil
	}
	v = strings.TrimPrefix(v, "bytes ")
	first, last, ok := strings.Cut(v, "-")
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(strings.SplitN(last, "/", 2)[0], 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, fmt.Errorf("%w: Content-Range %q", registry.ErrRangeInvalid, v)
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return 0, fmt.Errorf("%w: Content-Range %q with Content-Length %d", registry.ErrRangeInvalid, v, r.ContentLength)
	}
	return start, nil
}

func (s *server) patchUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	id, err := uploadVar(r)
	if err != nil {
		return err
	}
	off, err := contentRangeStart(r)
	if err != nil {
		return err
	}
	size, err := s.reg.AppendUpload(r.Context(), repo, id, off, r.Body)
	if err != nil {
		return err
	}
	uploadAccepted(w, repo, id, size, http.StatusAccepted)
	return nil
}

func (s *server) putUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	id, err := uploadVar(r)
	if err != nil {
		return err
	}
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	off, err := contentRangeStart(r)
	if err != nil {
		return err
	}
	if err := s.reg.FinishUpload(r.Context(), repo, id, d, off, r.Body); err != nil {
		return err
	}
	blobCreated(w, repo, d)
	return nil
}

func (s *server) cancelUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	id, err := uploadVar(r)
	if err != nil {
		return err
	}
	if err := s.reg.CancelUpload(r.Context(), repo, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- manifests ----

func (s *server) getManifest(w http.ResponseWriter, r *http.Request, repo string) error {
	ref, err := referenceVar(r)
	if err != nil {
		return err
	}
	var m registry.Manifest
	if r.Method == http.MethodHead {
		m, err = s.reg.StatManifest(r.Context(), repo, ref)
	} else {
		m, err = s.reg.GetManifest(r.Context(), repo, ref)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(m.Content)
	return err
}

func (s *server) putManifest(w http.ResponseWriter, r *http.Request, repo string) error {
	ref, err := referenceVar(r)
	if err != nil {
		return err
	}
	if r.ContentLength > s.maxMan {
		return fmt.Errorf("%w: manifest of %d bytes, limit %d", registry.ErrTooLarge, r.ContentLength, s.maxMan)
	}
	select {
	case s.manifests <- struct{}{}:
		defer func() { <-s.manifests }()
	case <-r.Context().Done():
		return r.Context().Err()
	}
	content, err := io.ReadAll(io.LimitReader(r.Body, s.maxMan+1))
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	d, subject, err := s.reg.PutManifest(r.Context(), repo, ref, mediaType(r.Header.Get("Content-Type")), content)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if subject != "" {
		h.Set("OCI-Subject", subject.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// mediaType drops parameters from a Content-Type.
func mediaType(ct string) string {
	t, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(t)
}

func (s *server) deleteManifest(w http.ResponseWriter, r *http.Request, repo string) error {
	ref, err := referenceVar(r)
	if err != nil {
		return err
	}
	if err := s.reg.DeleteManifest(r.Context(), repo, ref); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// ---- listings ----

// pageParams reads n (absent: -1, all) and last.
func pageParams(r *http.Request) (last string, n int, err error) {
	q := r.URL.Query()
	n = -1
	if v := q.Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return "", 0, fmt.Errorf("%w: n=%q", registry.ErrPaginationInvalid, v)
		}
	}
	return q.Get("last"), n, nil
}

// setNext sets the Link header to the page after last.
func setNext(w http.ResponseWriter, path string, last string, n int) {
	q := url.Values{"last": {last}, "n": {strconv.Itoa(n)}}
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	w.Header().Set("Content-Type", contentType)
	return json.NewEncoder(w).Encode(v)
}

func (s *server) tags(w http.ResponseWriter, r *http.Request, repo string) error {
	last, n, err := pageParams(r)
	if err != nil {
		return err
	}
	tags, more, err := s.reg.Tags(r.Context(), repo, last, n)
	if err != nil {
		return err
	}
	if tags == nil {
		tags = []string{}
	}
	if more && len(tags) > 0 {
		setNext(w, r.URL.Path, tags[len(tags)-1], n)
	}
	return writeJSON(w, "application/json", map[string]any{"name": repo, "tags": tags})
}

func (s *server) catalog(w http.ResponseWriter, r *http.Request) {
	last, n, err := pageParams(r)
	var repos []string
	var more bool
	if err == nil {
		if !s.auth.CheckCatalog(w, r) {
			return
		}
		repos, more, err = s.readableCatalog(r.Context(), last, n) // guard.go
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if repos == nil {
		repos = []string{}
	}
	if more && len(repos) > 0 {
		setNext(w, r.URL.Path, repos[len(repos)-1], n)
	}
	writeJSON(w, "application/json", map[string]any{"repositories": repos})
}

func (s *server) referrers(w http.ResponseWriter, r *http.Request, repo string) error {
	d, err := digestVar(r)
	if err != nil {
		return err
	}
	artifactType := r.URL.Query().Get("artifactType")
	descs, err := s.reg.Referrers(r.Context(), repo, d, artifactType)
	if err != nil {
		return err
	}
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specsVersioned,
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	})
}
