package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

func TestMatchRepo(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"team-a/**", "team-a", true},
		{"team-a/**", "team-a/x/y", true},
		{"team-a/**", "team-ab/x", false},
		{"team-*/app", "team-b/app", true},
		{"team-*/app", "team-b/x/app", false},
		{"*/public", "x/public", true},
		{"**/public", "x/y/public", true},
		{"**/public", "x/y/private", false},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c", false},
		{"exact", "exact", true},
		{"exact", "exact/sub", false},
	} {
		if got := matchRepo(c.pattern, c.name); got != c.want {
			t.Errorf("matchRepo(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Htpasswd: "x", Access: []Rule{{Repos: []string{"a"}, Users: []string{"u"}, Actions: []string{"pul"}}}}, "auth.access[0].actions"},
		{Config{Htpasswd: "x", Access: []Rule{{Repos: []string{"[a"}, Users: []string{"u"}, Actions: []string{"pull"}}}}, "auth.access[0].repos"},
		{Config{Htpasswd: "x", Access: []Rule{{Repos: []string{"a"}, Users: []string{"group:nope"}, Actions: []string{"pull"}}}}, "auth.access[0].users"},
		{Config{Htpasswd: "x", Access: []Rule{{Repos: []string{"a"}, Users: []string{"anonymous"}, Actions: []string{"push"}}}}, "anonymous may only be granted pull"},
		{Config{Htpasswd: "x", Access: []Rule{{Repos: []string{"a"}}}}, "auth.access[0]: needs"},
		{Config{Access: []Rule{{Repos: []string{"a"}, Users: []string{"u"}, Actions: []string{"pull"}}}}, "auth.access/auth.admins"},
		{Config{Htpasswd: "x", Admins: []string{"group:ops"}}, "auth.admins"},
		{Config{JWKS: "x", Token: ptr(true)}, "auth.token"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func htpasswdFile(t testing.TB, user, pass string) string {
	h, _ := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte(user+":"+string(h)+"\n"), 0o600)
	return p
}

func TestHtpasswdRejectsNonBcrypt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte("bob:{SHA}fEqNCco3Yq9h5ZUglD3CZJT4lBs=\n"), 0o600)
	if _, err := New(Config{Htpasswd: p}, nil); err == nil || !strings.Contains(err.Error(), "only bcrypt") {
		t.Fatalf("SHA1 htpasswd: %v", err)
	}
}

// guarded is a handler that answers 200 if Check lets repo "team/app"
// be pulled.
func guarded(a *Authenticator) http.Handler {
	return a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Check(w, r, "team/app", Pull) {
			w.WriteHeader(http.StatusOK)
		}
	}))
}

// TestExternalTokens: tokens of an external issuer, verified by a PEM
// public key or a JWKS file; wrong audience, issuer, key or expiry: 401.
func TestExternalTokens(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemFile := filepath.Join(dir, "issuer.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "kid": "ec-1", "crv": "P-256",
		"x": b64(ecKey.X.FillBytes(make([]byte, 32))), "y": b64(ecKey.Y.FillBytes(make([]byte, 32))),
	}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksFile, jwks, 0o644)

	a, err := New(Config{TrustedKeys: []string{pemFile}, JWKS: jwksFile, TrustedIssuer: "auth.example",
		Realm: "https://auth.example/token", Service: "registry.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := guarded(a)
	sign := func(method jwt.SigningMethod, key any, kid, iss, aud string, exp time.Duration, actions ...string) string {
		c := claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Subject: "carol", Audience: jwt.ClaimStrings{aud},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(exp))},
			Access: []ResourceAccess{{Type: "repository", Name: "team/app", Actions: actions}}}
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	status := func(tok string) (int, string) {
		r := httptest.NewRequest("GET", "/v2/team/app/tags/list", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Header().Get("WWW-Authenticate")
	}
	for _, c := range []struct {
		name string
		tok  string
		want int
	}{
		{"RSA key from PEM", sign(jwt.SigningMethodRS256, rsaKey, "", "auth.example", "registry.example", time.Minute, "pull"), 200},
		{"EC key from JWKS by kid", sign(jwt.SigningMethodES256, ecKey, "ec-1", "auth.example", "registry.example", time.Minute, "pull"), 200},
		{"EC key from JWKS, no kid", sign(jwt.SigningMethodES256, ecKey, "", "auth.example", "registry.example", time.Minute, "pull"), 200},
		{"push only: insufficient scope", sign(jwt.SigningMethodES256, ecKey, "ec-1", "auth.example", "registry.example", time.Minute, "push"), 401},
		{"untrusted key", sign(jwt.SigningMethodES256, otherKey, "ec-1", "auth.example", "registry.example", time.Minute, "pull"), 401},
		{"wrong audience", sign(jwt.SigningMethodRS256, rsaKey, "", "auth.example", "other", time.Minute, "pull"), 401},
		{"wrong issuer", sign(jwt.SigningMethodRS256, rsaKey, "", "evil.example", "registry.example", time.Minute, "pull"), 401},
		{"expired", sign(jwt.SigningMethodRS256, rsaKey, "", "auth.example", "registry.example", -time.Hour, "pull"), 401},
		{"none", "", 401},
	} {
		got, ch := status(c.tok)
		if got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
		if got == 401 && !strings.HasPrefix(ch, `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull"`) &&
			!strings.HasPrefix(ch, `Bearer realm="https://auth.example/token",service="registry.example"`) {
			t.Errorf("%s: challenge %q", c.name, ch)
		}
	}
	// An alg=none token is refused.
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "auth.example",
		Audience: jwt.ClaimStrings{"registry.example"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))},
		Access: []ResourceAccess{{Type: "repository", Name: "team/app", Actions: []string{"pull"}}}})
	s, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if got, _ := status(s); got != 401 {
		t.Errorf("alg=none: %d", got)
	}
}

// TestTokenGrantsOnlyTheRules: the built-in endpoint grants the
// intersection of what is asked and what the rules allow.
func TestTokenGrantsOnlyTheRules(t *testing.T) {
	a, err := New(Config{Htpasswd: htpasswdFile(t, "dev", "pw"), Groups: map[string][]string{"devs": {"dev"}},
		Access: []Rule{
			{Repos: []string{"team/**"}, Users: []string{"group:devs"}, Actions: []string{"pull", "push"}},
			{Repos: []string{"pub/*"}, Users: []string{"anonymous"}, Actions: []string{"pull"}},
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(user string, scopes ...string) []ResourceAccess {
		q := "service=chunkyard"
		for _, s := range scopes {
			q += "&scope=" + s
		}
		r := httptest.NewRequest("GET", "/token?"+q, nil)
		if user != "" {
			r.SetBasicAuth(user, "pw")
		}
		w := httptest.NewRecorder()
		a.Middleware(http.NotFoundHandler()).ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("token: %d %s", w.Code, w.Body)
		}
		var body struct{ Token string }
		json.NewDecoder(w.Body).Decode(&body)
		c, builtin, err := a.verify(body.Token)
		if err != nil || !builtin {
			t.Fatalf("verify own token: %v %v", err, builtin)
		}
		return c.Access
	}
	got := get("dev", "repository:team/app:pull,push,delete", "repository:other:pull", "registry:catalog:*")
	want := `[{"type":"repository","name":"team/app","actions":["pull","push"]},{"type":"registry","name":"catalog","actions":["*"]}]`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("dev's grant: %s, want %s", b, want)
	}
	got = get("", "repository:pub/x:pull,push", "repository:team/app:pull", "registry:catalog:*")
	want = `[{"type":"repository","name":"pub/x","actions":["pull"]}]`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("anonymous grant: %s, want %s", b, want)
	}
}

func TestFailLimiter(t *testing.T) {
	l := &failLimiter{max: 3, m: map[string]*failWindow{}}
	now := time.Now()
	for i := 0; i < 3; i++ {
		if l.blocked("a", now) {
			t.Fatalf("blocked after %d", i)
		}
		l.fail("a", now)
	}
	if !l.blocked("a", now) || l.blocked("b", now) {
		t.Fatal("the limit is per address")
	}
	if l.blocked("a", now.Add(failWindowLen)) {
		t.Fatal("still blocked after the window")
	}
}

// TestHtpasswdReload: a user added to the file can log in within a few
// seconds, without a signal; a broken file keeps the old users.
func TestHtpasswdReload(t *testing.T) {
	p := htpasswdFile(t, "dev", "pw")
	h, err := loadHtpasswd(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.verify("new", "pw2") {
		t.Fatal("unknown user accepted")
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw2"), bcrypt.MinCost)
	old, _ := os.ReadFile(p)
	os.WriteFile(p, append(old, []byte("new:"+string(hash)+"\n")...), 0o600)
	later := time.Now().Add(time.Minute)
	os.Chtimes(p, later, later)
	h.mu.Lock()
	h.checked = time.Time{} // as if 2 s had passed
	h.mu.Unlock()
	if !h.verify("new", "pw2") || !h.verify("dev", "pw") {
		t.Fatal("added user not picked up")
	}
	os.WriteFile(p, []byte("garbage\n"), 0o600)
	os.Chtimes(p, later.Add(time.Minute), later.Add(time.Minute))
	var reported error
	h.onError = func(err error) { reported = err }
	h.mu.Lock()
	h.checked = time.Time{}
	h.mu.Unlock()
	if !h.verify("dev", "pw") || reported == nil {
		t.Fatalf("broken file: old users must stay (err reported: %v)", reported)
	}
}
