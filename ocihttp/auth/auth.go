package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Authenticator authenticates requests and decides what they may do.
type Authenticator struct {
	cfg      Config
	rules    rules
	htpasswd *htpasswd
	signer   *signer // nil without the token endpoint
	verifier verifier
	limiter  *failLimiter
	log      *slog.Logger

	tokenMu sync.Mutex
	tokens  map[[32]byte]verifiedToken // token.go
}

// New checks cfg and loads its files.
func New(cfg Config, log *slog.Logger) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, fmt.Errorf("auth: nothing configured (auth.htpasswd, auth.trusted-keys or auth.jwks)")
	}
	if log == nil {
		log = slog.Default()
	}
	a := &Authenticator{cfg: cfg, log: log, verifier: verifier{keys: map[string]crypto.PublicKey{}},
		limiter: &failLimiter{max: cfg.MaxFailures, m: map[string]*failWindow{}},
		tokens:  map[[32]byte]verifiedToken{}}
	a.rules = rules{cfg: &a.cfg}
	var err error
	if cfg.Htpasswd != "" {
		if a.htpasswd, err = loadHtpasswd(cfg.Htpasswd); err != nil {
			return nil, err
		}
		a.htpasswd.onError = func(err error) {
			log.Error("htpasswd changed but does not load; keeping the users read before", "err", err)
		}
	}
	if cfg.tokenEndpoint() {
		if a.signer, err = newSigner(cfg.TokenKey); err != nil {
			return nil, err
		}
	}
	for _, p := range cfg.TrustedKeys {
		if err := loadPEMKeys(&a.verifier, p); err != nil {
			return nil, err
		}
	}
	if cfg.JWKS != "" {
		if err := loadJWKS(&a.verifier, cfg.JWKS); err != nil {
			return nil, err
		}
	}
	if !cfg.tokenEndpoint() && cfg.Htpasswd == "" && cfg.Realm == "" {
		return nil, fmt.Errorf("auth.realm: with only external token issuers, set the realm clients fetch tokens from")
	}
	return a, nil
}

// Reload reads the htpasswd file again (on SIGHUP; a change of the file's
// modification time is also noticed by itself within 2 seconds).
func (a *Authenticator) Reload() error {
	if a == nil || a.htpasswd == nil {
		return nil
	}
	return a.htpasswd.reload()
}

// TokenEndpoint reports whether the built-in /token endpoint is on.
func (a *Authenticator) TokenEndpoint() bool { return a != nil && a.signer != nil }

// Identity is who made a request.
type Identity struct {
	// Name is the user (a token's subject); "" for anonymous.
	Name string
	// Method is "anonymous", "basic" or "bearer".
	Method  string
	access  []ResourceAccess // a bearer token's claims
	builtin bool             // the token is the built-in issuer's
}

// Anonymous reports whether the caller gave no credentials.
func (id *Identity) Anonymous() bool { return id.Name == "" }

type ctxKey int

const (
	identityKey ctxKey = iota
	slotKey
)

// FromContext returns the caller's identity; nil if authentication is
// off (everything is allowed).
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey).(*Identity)
	return id
}

// WithSlot returns a context in which the middleware, further in, will
// store the identity it finds into *slot (for access logs and metrics
// wrapped around it).
func WithSlot(ctx context.Context, slot **Identity) context.Context {
	return context.WithValue(ctx, slotKey, slot)
}

// Middleware authenticates each request and serves the token endpoint:
// bad credentials are answered 401 here, anything else goes on with the
// identity in the context.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.signer != nil && r.URL.Path == "/token" {
			a.serveToken(w, r)
			return
		}
		id, status := a.authenticate(r)
		if status != 0 {
			a.refuse(w, r, status, "", nil)
			return
		}
		if slot, ok := r.Context().Value(slotKey).(**Identity); ok {
			*slot = id
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey, id)))
	})
}

// authenticate returns the caller's identity, or the status to refuse
// with: 401 for bad credentials, 429 while the client IP is limited.
func (a *Authenticator) authenticate(r *http.Request) (*Identity, int) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &Identity{Method: "anonymous"}, 0
	}
	ip := clientIP(r)
	if a.limiter.blocked(ip, time.Now()) {
		return nil, http.StatusTooManyRequests
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		if user, pass, ok := r.BasicAuth(); ok && a.htpasswd != nil && a.htpasswd.verify(user, pass) {
			return &Identity{Name: user, Method: "basic"}, 0
		}
	case "bearer":
		c, builtin, err := a.verify(strings.TrimSpace(cred))
		if err == nil {
			name := c.Subject
			if name == "" && !builtin {
				name = "token"
			}
			return &Identity{Name: name, Method: "bearer", access: c.Access, builtin: builtin}, 0
		}
		a.log.Debug("bad token", "remote", ip, "err", err)
	}
	a.limiter.fail(ip, time.Now())
	return nil, http.StatusUnauthorized
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// allowed reports whether id may do action on repo.
func (a *Authenticator) allowed(id *Identity, repo, action string) bool {
	if id.Method == "bearer" {
		return tokenGrants(id.access, "repository", repo, action)
	}
	return slices.Contains(a.rules.allowed(id.Name, repo), action)
}

func tokenGrants(access []ResourceAccess, typ, name, action string) bool {
	for _, ra := range access {
		if ra.Type == typ && ra.Name == name && (slices.Contains(ra.Actions, action) || slices.Contains(ra.Actions, "*")) {
			return true
		}
	}
	return false
}

// Check reports whether the request may do actions on repo; if not, it
// has answered 401 (with the challenge naming the scope) or 403. With
// authentication off it always reports true.
func (a *Authenticator) Check(w http.ResponseWriter, r *http.Request, repo string, actions ...string) bool {
	id := FromContext(r.Context())
	if a == nil || id == nil {
		return true
	}
	if !slices.ContainsFunc(actions, func(act string) bool { return !a.allowed(id, repo, act) }) {
		return true
	}
	scope := "repository:" + repo + ":" + strings.Join(actions, ",")
	a.deny(w, r, id, scope, func() bool {
		granted := a.rules.allowed(id.Name, repo)
		return !slices.ContainsFunc(actions, func(act string) bool { return !slices.Contains(granted, act) })
	})
	return false
}

// deny answers a request id may not make: 401 with a challenge for the
// anonymous and for tokens that could hold the scope, 403 otherwise.
// couldGrant says whether the rules would grant the scope to id's user.
func (a *Authenticator) deny(w http.ResponseWriter, r *http.Request, id *Identity, scope string, couldGrant func() bool) {
	detail := []map[string]string{{"Type": "scope", "Name": scope}}
	switch {
	case id.Anonymous():
		a.refuse(w, r, http.StatusUnauthorized, scope, detail)
	case id.Method == "bearer" && (!id.builtin || couldGrant()):
		w.Header().Set("WWW-Authenticate", a.challenge(r, scope)+`,error="insufficient_scope"`)
		writeCode(w, http.StatusUnauthorized, "UNAUTHORIZED", "the token does not grant "+scope, detail)
	default:
		writeCode(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied", detail)
	}
}

// CheckCatalog reports whether the request may list the catalog (any
// authenticated caller; a token needs registry:catalog:*); the listing is
// then filtered with CanRead.
func (a *Authenticator) CheckCatalog(w http.ResponseWriter, r *http.Request) bool {
	id := FromContext(r.Context())
	if a == nil || id == nil {
		return true
	}
	if id.Method == "basic" || (id.Method == "bearer" && tokenGrants(id.access, "registry", "catalog", "*")) {
		return true
	}
	a.deny(w, r, id, "registry:catalog:*", func() bool { return true })
	return false
}

// CheckPing answers /v2/: callers with credentials or a token (also an
// anonymous one) only, so that clients learn the challenge there.
func (a *Authenticator) CheckPing(w http.ResponseWriter, r *http.Request) bool {
	id := FromContext(r.Context())
	if a == nil || id == nil || id.Method != "anonymous" { // a token, even an anonymous one
		return true
	}
	a.refuse(w, r, http.StatusUnauthorized, "", nil)
	return false
}

// CanRead reports whether the caller may pull repo (for filtering: the
// catalog, a mount's source). Authentication off: true.
func (a *Authenticator) CanRead(ctx context.Context, repo string) bool {
	id := FromContext(ctx)
	if a == nil || id == nil {
		return true
	}
	if a.allowed(id, repo, Pull) {
		return true
	}
	// A built-in token vouches for its subject: the rules apply (a
	// catalog token carries no repository scopes).
	return id.Method == "bearer" && id.builtin && slices.Contains(a.rules.allowed(id.Name, repo), Pull)
}

// Restricted reports whether some callers may not read everything (any
// authentication configured): then a mount without "from" is not done.
func (a *Authenticator) Restricted() bool { return a != nil }

// challenge is the WWW-Authenticate value for scope ("" for none).
func (a *Authenticator) challenge(r *http.Request, scope string) string {
	if a.signer == nil && a.cfg.Realm == "" {
		return `Basic realm="chunkyard"`
	}
	realm := a.cfg.Realm
	if realm == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		realm = scheme + "://" + r.Host + "/token"
	}
	c := fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, a.cfg.Service)
	if scope != "" {
		c += fmt.Sprintf(`,scope=%q`, scope)
	}
	return c
}

// refuse answers 401 with the challenge, or 429.
func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, status int, scope string, detail any) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int(failWindowLen/time.Second)))
		writeCode(w, status, "TOOMANYREQUESTS", "too many failed logins from this address; try again later", nil)
		return
	}
	w.Header().Set("WWW-Authenticate", a.challenge(r, scope))
	msg := "authentication required"
	if r.Header.Get("Authorization") != "" {
		msg = "bad credentials"
	}
	writeCode(w, status, "UNAUTHORIZED", msg, detail)
}

// writeCode writes OCI error JSON.
func writeCode(w http.ResponseWriter, status int, code, msg string, detail any) {
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string][]entry{"errors": {{code, msg, detail}}})
}

// AdminMiddleware lets only admin identities (basic auth, or a built-in
// token's subject) through to next.
func (a *Authenticator) AdminMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, status := a.authenticate(r)
		if status == http.StatusTooManyRequests {
			a.refuse(w, r, status, "", nil)
			return
		}
		if status != 0 || id.Anonymous() {
			w.Header().Set("WWW-Authenticate", `Basic realm="chunkyard-admin"`)
			writeCode(w, http.StatusUnauthorized, "UNAUTHORIZED", "the admin API needs an admin's credentials", nil)
			return
		}
		if (id.Method == "bearer" && !id.builtin) || !a.rules.admin(id.Name) {
			writeCode(w, http.StatusForbidden, "DENIED", "not an admin", nil)
			return
		}
		if slot, ok := r.Context().Value(slotKey).(**Identity); ok {
			*slot = id
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey, id)))
	})
}

// failLimiter counts failed logins per client IP in fixed windows.
type failLimiter struct {
	max int // per window; < 0: no limit
	mu  sync.Mutex
	m   map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

const failWindowLen = time.Minute

func (l *failLimiter) blocked(ip string, now time.Time) bool {
	if l.max < 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[ip]
	return w != nil && now.Sub(w.start) < failWindowLen && w.n >= l.max
}

func (l *failLimiter) fail(ip string, now time.Time) {
	if l.max < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[ip]
	if w == nil || now.Sub(w.start) >= failWindowLen {
		if len(l.m) > 10000 { // drop the expired windows
			for k, v := range l.m {
				if now.Sub(v.start) >= failWindowLen {
					delete(l.m, k)
				}
			}
		}
		w = &failWindow{start: now}
		l.m[ip] = w
	}
	w.n++
}
