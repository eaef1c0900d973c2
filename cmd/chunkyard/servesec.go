package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/ocihttp/auth"
	"github.com/chunkyard/chunkyard/ops"
	"github.com/chunkyard/chunkyard/registry"
)

// secFlags are serve's flags for TLS, authentication, the config file and
// abuse limits.
type secFlags struct {
	config            string
	tlsCert, tlsKey   string
	htpasswd          string
	maxUploads        int
	maxUploadBytes    int64
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	accessLog         bool
}

func addSecFlags(fs *flag.FlagSet, f *secFlags) {
	fs.StringVar(&f.config, "config", "", "configuration file (TOML): top-level keys set the flags of the same name, [auth] the access rules, [gc] the GC configuration; the environment and flags override it")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS (and HTTP/2) with; reloaded when the file changes or on SIGHUP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.htpasswd, "htpasswd", "", "htpasswd file (bcrypt): turns on basic auth and the bearer-token endpoint /token; every listed user may do everything unless [auth] access rules say less")
	fs.IntVar(&f.maxUploads, "max-uploads", 64, "upload requests (PATCH, PUT, POST with a body) served at once; more are answered 429 TOOMANYREQUESTS (0: no limit)")
	f.maxUploadBytes = 64 << 30
	fs.Var((*byteSize)(&f.maxUploadBytes), "max-upload-bytes", "bytes held in unfinished upload sessions, all together; uploads past it are answered 429 TOOMANYREQUESTS (0: no limit)")
	fs.DurationVar(&f.readHeaderTimeout, "read-header-timeout", 30*time.Second, "how long a client may take to send a request's headers")
	fs.BoolVar(&f.accessLog, "access-log", true, "log each request at info (request id, user, status, bytes, duration)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 2*time.Minute, "how long a kept-alive connection may wait for its next request")
}

func (f *secFlags) check() error {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if f.maxUploads < 0 || f.maxUploadBytes < 0 {
		return fmt.Errorf("--max-uploads and --max-upload-bytes must be 0 or more")
	}
	return nil
}

// newAuth returns the authenticator of --htpasswd and the config's
// [auth] (nil if neither turns authentication on).
func newAuth(f *secFlags, fc *fileConfig, log *slog.Logger) (*auth.Authenticator, error) {
	var cfg auth.Config
	if fc.auth != nil {
		cfg = *fc.auth
	}
	if f.htpasswd != "" {
		cfg.Htpasswd = f.htpasswd
	}
	if !cfg.Enabled() {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return auth.New(cfg, log)
}

// certReloader serves the certificate of its files, read again when
// their modification time changes (looked at most once a second) or on
// reload (SIGHUP). A bad new pair is logged and the old one kept.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) modTime() time.Time {
	var t time.Time
	for _, p := range []string{c.certFile, c.keyFile} {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

func (c *certReloader) reload() error {
	mt := c.modTime()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	c.mu.Lock()
	c.cert, c.mtime = &cert, mt
	c.mu.Unlock()
	return nil
}

func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	now := time.Now()
	stale := now.Sub(c.checked) > time.Second
	if stale {
		c.checked = now
	}
	c.mu.Unlock()
	if stale && !c.modTime().Equal(c.mtime) {
		if err := c.reload(); err != nil {
			c.log.Error("TLS certificate changed but does not load; keeping the old one", "err", err)
		} else {
			c.log.Info("TLS certificate reloaded", "cert", c.certFile)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert, nil
}

func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{GetCertificate: c.getCertificate, MinVersion: tls.VersionTLS12}
}

// isLoopback reports whether addr listens on loopback only.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// gate answers /healthz always and /readyz once ready (503 before);
// every other request waits until the handler set with open is there (or
// the client gives up), so that a client that connects early is served
// once recovery is done rather than refused.
type gate struct {
	once  sync.Once
	ready chan struct{}
	h     atomic.Pointer[http.Handler]
}

func newGate() *gate { return &gate{ready: make(chan struct{})} }

func (g *gate) open(h http.Handler) {
	g.h.Store(&h)
	g.once.Do(func() { close(g.ready) })
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := g.h.Load()
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
		return
	case "/readyz":
		w.Header().Set("Content-Type", "text/plain")
		if h == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "starting: recovery and encoder helper discovery not done")
			return
		}
		fmt.Fprintln(w, "ready")
		return
	}
	if h == nil {
		select {
		case <-g.ready:
			h = g.h.Load()
		case <-r.Context().Done():
			return
		}
	}
	(*h).ServeHTTP(w, r)
}

// authorizeEarly answers a repository request the caller may not make
// before the handlers it wraps (the quota check) can say anything about
// the repository; the API checks again, by its own routes.
func authorizeEarly(a *auth.Authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := ops.ParseRoute(r.URL.EscapedPath())
		if rt.Repo != "" && registry.ValidateName(rt.Repo) == nil && !a.Check(w, r, rt.Repo, routeAction(r.Method, rt.Template)) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routeAction is the action a request on route template needs (as
// ocihttp decides it).
func routeAction(method, template string) string {
	switch {
	case template == ops.RouteUploads || template == ops.RouteUpload:
		return auth.Push
	case method == http.MethodGet || method == http.MethodHead:
		return auth.Pull
	case method == http.MethodDelete:
		return auth.Delete
	}
	return auth.Push
}

// withBase cancels each request's context when base is done too (what
// http.Server.BaseContext would do, for a server started before base).
func withBase(base context.Context, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(base, cancel)
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// accessLog logs each request at info with a request id: the client's
// X-Request-Id if it is a sane token, else a new one; it is echoed in the
// response.
func accessLog(log *slog.Logger, on bool, next http.Handler) http.Handler {
	if !on {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		var who *auth.Identity
		sw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(auth.WithSlot(r.Context(), &who)))
		user := "-"
		if who != nil && who.Name != "" {
			user = who.Name
		}
		log.Info("access", "id", id, "remote", r.RemoteAddr, "user", user, "method", r.Method,
			"path", r.URL.Path, "proto", r.Proto, "status", sw.status, "bytes_in", max(r.ContentLength, 0),
			"bytes_out", sw.n, "duration", time.Since(start))
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	return strings.IndexFunc(id, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) < 0
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (w *countingWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// uploadLimiter caps upload requests in flight and the bytes held in
// upload sessions (measured from the spool directory every few seconds,
// plus what is being sent now), answering 429 TOOMANYREQUESTS past them.
type uploadLimiter struct {
	slots    chan struct{} // nil: no limit
	maxBytes int64         // 0: no limit
	dir      string
	spooled  atomic.Int64 // bytes in the spool directory at the last look
	inFlight atomic.Int64 // declared bytes of the upload requests now served
}

func newUploadLimiter(max int, maxBytes int64, dir string) *uploadLimiter {
	l := &uploadLimiter{maxBytes: maxBytes, dir: dir}
	if max > 0 {
		l.slots = make(chan struct{}, max)
	}
	return l
}

// measure sums the spool directory's file sizes.
func (l *uploadLimiter) measure() {
	var total int64
	filepath.WalkDir(l.dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	l.spooled.Store(total)
}

func (l *uploadLimiter) run(stop <-chan struct{}) {
	if l.maxBytes == 0 {
		return
	}
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		l.measure()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func isUploadRequest(r *http.Request) bool {
	if r.Method != http.MethodPatch && r.Method != http.MethodPut && r.Method != http.MethodPost {
		return false
	}
	return strings.Contains(r.URL.Path, "/blobs/uploads/")
}

func (l *uploadLimiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUploadRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
				defer func() { <-l.slots }()
			default:
				tooMany(w, "too many uploads in flight; try again shortly")
				return
			}
		}
		if l.maxBytes > 0 {
			n := max(r.ContentLength, 0)
			if l.spooled.Load()+l.inFlight.Add(n) > l.maxBytes && n > 0 {
				l.inFlight.Add(-n)
				tooMany(w, "too many bytes held in unfinished uploads; try again later")
				return
			}
			defer l.inFlight.Add(-n)
		}
		next.ServeHTTP(w, r)
	})
}

func tooMany(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "5")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	fmt.Fprintf(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":%q}]}`+"\n", msg)
}
