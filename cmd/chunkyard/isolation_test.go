package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	alice = "alice=alice-secret"
	bob   = "bob=bob-secret"
)

// tenantServer serves two tenants, alice (alice/**) and bob (bob/**),
// anonymous pull of public/**, alice the admin.
func tenantServer(t *testing.T, extra ...string) *authServer {
	t.Helper()
	dir := t.TempDir()
	htp := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htp, alice, bob)
	cfg := filepath.Join(dir, "chunkyard.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
log-level = "info"
max-manifest-size = "1MiB"

[auth]
htpasswd = %q
admins = ["alice"]
max-failures = 5

[[auth.access]]
repos = ["alice/**"]
users = ["alice"]
actions = ["*"]

[[auth.access]]
repos = ["bob/**"]
users = ["bob"]
actions = ["pull", "push", "delete"]

[[auth.access]]
repos = ["public/**"]
users = ["anonymous", "*"]
actions = ["pull"]

[[auth.access]]
repos = ["public/**"]
users = ["alice"]
actions = ["push"]
`, htp)), 0o600)
	return startAuthServer(t, nil, append([]string{"--config", cfg}, extra...)...)
}

// TestTenantIsolation: bob learns nothing about what only alice's
// repositories hold, through HEAD, GET, mount, referrers, the catalog or
// tags/list; the answers about alice's content equal the answers about
// content that does not exist anywhere.
func TestTenantIsolation(t *testing.T) {
	s := tenantServer(t)
	secret := []byte("alice's secret layer " + strings.Repeat("x", 5000))
	aliceManifest, secretDigest := s.pushImage(t, alice, "alice/app", "v1", secret)
	s.pushImage(t, bob, "bob/app", "v1", []byte("bob's own layer"))
	absent := digestOf([]byte("stored nowhere"))
	absentManifest := digestOf([]byte("no such manifest"))

	// same asserts that alice's digest and a digest stored nowhere get the
	// same status, and that status is want.
	same := func(what, method, pathFmt string, d1, d2 string, want int) {
		t.Helper()
		st1, _, b1 := s.req(t, method, fmt.Sprintf(pathFmt, d1), bob, nil)
		st2, _, b2 := s.req(t, method, fmt.Sprintf(pathFmt, d2), bob, nil)
		b1 = strings.ReplaceAll(b1, d1, "D")
		b2 = strings.ReplaceAll(b2, d2, "D")
		if st1 != want || st2 != want || b1 != b2 {
			t.Errorf("%s: alice's content %d %q, absent content %d %q; want both %d, same body", what, st1, b1, st2, b2, want)
		}
	}
	// In bob's own repository: alice's blob is unknown.
	same("HEAD blob in bob/app", "HEAD", "/v2/bob/app/blobs/%s", secretDigest, absent, http.StatusNotFound)
	same("GET blob in bob/app", "GET", "/v2/bob/app/blobs/%s", secretDigest, absent, http.StatusNotFound)
	same("GET manifest in bob/app", "GET", "/v2/bob/app/manifests/%s", aliceManifest, absentManifest, http.StatusNotFound)
	same("referrers in bob/app", "GET", "/v2/bob/app/referrers/%s", aliceManifest, absentManifest, http.StatusOK)
	// In alice's repository, and one that does not exist: denied alike.
	same("HEAD blob in alice/app", "HEAD", "/v2/alice/app/blobs/%s", secretDigest, absent, http.StatusForbidden)
	same("GET blob in alice/app", "GET", "/v2/alice/app/blobs/%s", secretDigest, absent, http.StatusForbidden)
	same("GET manifest in alice/app", "GET", "/v2/alice/app/manifests/%s", aliceManifest, absentManifest, http.StatusForbidden)
	same("referrers in alice/app", "GET", "/v2/alice/app/referrers/%s", aliceManifest, absentManifest, http.StatusForbidden)
	same("blob in a repository that does not exist", "GET", "/v2/alice/%s/blobs/"+secretDigest, "app", "nothing", http.StatusForbidden)
	same("tags/list of alice/app and of alice/nothing", "GET", "/v2/alice/%s/tags/list", "app", "nothing", http.StatusForbidden)
	if st, _, _ := s.req(t, "GET", "/v2/bob/nothing/tags/list", bob, nil); st != http.StatusNotFound {
		t.Errorf("bob's own missing repository: %d, want 404", st)
	}

	// Mounts: without from, from alice's repository, from a repository
	// that does not exist: all a plain upload (202), as for a digest
	// stored nowhere, and the blob stays unreadable in bob/app.
	for _, q := range []string{"mount=%s", "mount=%s&from=alice/app", "mount=%s&from=alice/nothing"} {
		same("mount "+q, "POST", "/v2/bob/app/blobs/uploads/?"+q, secretDigest, absent, http.StatusAccepted)
	}
	if st, _, _ := s.req(t, "GET", "/v2/bob/app/blobs/"+secretDigest, bob, nil); st != http.StatusNotFound {
		t.Errorf("after the mounts, bob reads alice's blob: %d", st)
	}
	// Alice may mount between her own repositories (201), and from bob's
	// (no, she cannot read it: 202).
	if st, _, b := s.req(t, "POST", "/v2/alice/copy/blobs/uploads/?mount="+secretDigest+"&from=alice/app", alice, nil); st != http.StatusCreated {
		t.Errorf("alice mounting her own blob: %d %s", st, b)
	}

	// A manifest in bob/app naming alice's layer: unknown, as an absent one.
	bobCfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgDigest := digestOf(bobCfg) // bob pushed this config in bob/app above
	manifestNaming := func(layer string, size int) string {
		return fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
			cfgDigest, len(bobCfg), layer, size)
	}
	st1, _, b1 := s.req(t, "PUT", "/v2/bob/app/manifests/stolen", bob, []byte(manifestNaming(secretDigest, len(secret))))
	st2, _, b2 := s.req(t, "PUT", "/v2/bob/app/manifests/stolen", bob, []byte(manifestNaming(absent, len(secret))))
	if st1 != http.StatusBadRequest || st2 != st1 || !strings.Contains(b1, "MANIFEST_BLOB_UNKNOWN") || strings.ReplaceAll(b1, secretDigest, "D") != strings.ReplaceAll(b2, absent, "D") {
		t.Errorf("manifest naming alice's layer: %d %s; naming an absent one: %d %s", st1, b1, st2, b2)
	}

	// Pushing into alice's repository: denied, whatever is there.
	if st, _, _ := s.req(t, "POST", "/v2/alice/app/blobs/uploads/", bob, nil); st != http.StatusForbidden {
		t.Errorf("bob starting an upload in alice/app: %d", st)
	}
	if st, _, _ := s.req(t, "DELETE", "/v2/alice/app/manifests/"+aliceManifest, bob, nil); st != http.StatusForbidden {
		t.Errorf("bob deleting alice's manifest: %d", st)
	}

	// The catalog lists only what the caller can read.
	catalog := func(user string) []string {
		st, _, b := s.req(t, "GET", "/v2/_catalog", user, nil)
		if st != http.StatusOK {
			t.Fatalf("catalog as %s: %d %s", user, st, b)
		}
		var c struct{ Repositories []string }
		json.Unmarshal([]byte(b), &c)
		return c.Repositories
	}
	if got := catalog(bob); !slices.Equal(got, []string{"bob/app"}) {
		t.Errorf("bob's catalog: %v", got)
	}
	if got := catalog(alice); !slices.Equal(got, []string{"alice/app", "alice/copy"}) {
		t.Errorf("alice's catalog: %v", got)
	}
	// Paged through alice's view, one at a time: every readable
	// repository once, in order, none of bob's.
	var paged []string
	next := "/v2/_catalog?n=1"
	for i := 0; next != "" && i < 10; i++ {
		st, h, b := s.req(t, "GET", next, alice, nil)
		if st != http.StatusOK {
			t.Fatalf("catalog page: %d %s", st, b)
		}
		var c struct{ Repositories []string }
		json.Unmarshal([]byte(b), &c)
		paged = append(paged, c.Repositories...)
		next = ""
		if l := h.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(l, ";")[0], "<"), ">")
		}
	}
	if !slices.Equal(paged, []string{"alice/app", "alice/copy"}) {
		t.Errorf("alice's catalog, paged: %v", paged)
	}
	// Paged: n=1 pages through bob's view only.
	if st, h, b := s.req(t, "GET", "/v2/_catalog?n=1", bob, nil); st != http.StatusOK || !strings.Contains(b, "bob/app") || strings.Contains(b, "alice") {
		t.Errorf("bob's catalog page: %d %s %v", st, b, h)
	}

	// Anonymous: 401 with a Bearer challenge on /v2/ and on alice's repo;
	// public/** pullable.
	st, h, _ := s.req(t, "GET", "/v2/", "", nil)
	if ch := h.Get("WWW-Authenticate"); st != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="http://`+s.host+`/token",service="chunkyard"`) {
		t.Errorf("anonymous /v2/: %d %q", st, ch)
	}
	st, h, b := s.req(t, "GET", "/v2/alice/app/tags/list", "", nil)
	if ch := h.Get("WWW-Authenticate"); st != http.StatusUnauthorized || !strings.Contains(ch, `scope="repository:alice/app:pull"`) || !strings.Contains(b, "UNAUTHORIZED") {
		t.Errorf("anonymous tags/list of alice/app: %d %q %s", st, ch, b)
	}
	s.pushImage(t, alice, "public/base", "latest", []byte("public layer"))
	if st, _, b := s.req(t, "GET", "/v2/public/base/tags/list", "", nil); st != http.StatusOK || !strings.Contains(b, "latest") {
		t.Errorf("anonymous pull of public/base: %d %s", st, b)
	}
	if st, _, _ := s.req(t, "POST", "/v2/public/base/blobs/uploads/", "", nil); st != http.StatusUnauthorized {
		t.Errorf("anonymous push to public/base: %d", st)
	}
	if st, _, _ := s.req(t, "POST", "/v2/public/base/blobs/uploads/", bob, nil); st != http.StatusForbidden {
		t.Errorf("bob pushing to public/base: %d", st)
	}
}

// TestBearerTokens: the token endpoint grants what the rules allow, a
// token works only within its scope, and a request beyond it gets 401
// insufficient_scope or 403.
func TestBearerTokens(t *testing.T) {
	s := tenantServer(t)
	s.pushImage(t, alice, "alice/app", "v1", []byte("alice layer"))
	s.pushImage(t, bob, "bob/app", "v1", []byte("bob layer"))
	token := func(user string, post bool, scopes ...string) (string, int) {
		t.Helper()
		var st int
		var b string
		if post {
			u, p, _ := strings.Cut(user, "=")
			form := fmt.Sprintf("grant_type=password&service=chunkyard&client_id=test&username=%s&password=%s&scope=%s", u, p, strings.Join(scopes, "+"))
			r, _ := http.NewRequest("POST", s.base+"/token", strings.NewReader(form))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := s.client.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			tok, _ := out["access_token"].(string)
			return tok, resp.StatusCode
		}
		q := "service=chunkyard"
		for _, sc := range scopes {
			q += "&scope=" + sc
		}
		st, _, b = s.req(t, "GET", "/token?"+q, user, nil)
		var out struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal([]byte(b), &out)
		var out2 struct{ Token string }
		json.Unmarshal([]byte(b), &out2)
		if out2.Token != out.AccessToken && st == 200 {
			t.Errorf("token and access_token differ: %s", b)
		}
		return out2.Token, st
	}
	bearer := func(tok string) string { return "Bearer " + tok }

	tok, st := token(bob, false, "repository:bob/app:pull,push", "repository:alice/app:pull")
	if st != http.StatusOK || tok == "" {
		t.Fatalf("token: %d", st)
	}
	if st, _, b := s.reqAuth(t, "GET", "/v2/bob/app/tags/list", bearer(tok), nil); st != http.StatusOK {
		t.Errorf("bob's token on bob/app: %d %s", st, b)
	}
	if st, _, _ := s.reqAuth(t, "GET", "/v2/", bearer(tok), nil); st != http.StatusOK {
		t.Errorf("bob's token on /v2/: %d", st)
	}
	// alice/app was asked for and not granted: the rules never would: 403.
	if st, _, b := s.reqAuth(t, "GET", "/v2/alice/app/tags/list", bearer(tok), nil); st != http.StatusForbidden || !strings.Contains(b, "DENIED") {
		t.Errorf("bob's token on alice/app: %d %s", st, b)
	}
	// Delete on bob/app was not asked for but could be granted: 401
	// insufficient_scope, naming the scope to ask for.
	st, h, _ := s.reqAuth(t, "DELETE", "/v2/bob/app/manifests/v1", bearer(tok), nil)
	if ch := h.Get("WWW-Authenticate"); st != http.StatusUnauthorized || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="repository:bob/app:delete"`) {
		t.Errorf("delete beyond the token: %d %q", st, ch)
	}
	// The OAuth2 POST form (containerd).
	tok, st = token(alice, true, "repository:alice/app:pull", "registry:catalog:*")
	if st != http.StatusOK || tok == "" {
		t.Fatalf("POST token: %d", st)
	}
	if st, _, b := s.reqAuth(t, "GET", "/v2/alice/app/manifests/v1", bearer(tok), nil); st != http.StatusOK {
		t.Errorf("alice's POST token: %d %s", st, b)
	}
	if st, _, b := s.reqAuth(t, "GET", "/v2/_catalog", bearer(tok), nil); st != http.StatusOK || strings.Contains(b, "bob") || !strings.Contains(b, "alice/app") {
		t.Errorf("catalog with a token: %d %s", st, b)
	}
	// Anonymous token: only public/** pull.
	tok, st = token("", false, "repository:alice/app:pull")
	if st != http.StatusOK {
		t.Fatalf("anonymous token: %d", st)
	}
	if st, _, _ := s.reqAuth(t, "GET", "/v2/alice/app/tags/list", bearer(tok), nil); st != http.StatusUnauthorized && st != http.StatusForbidden {
		t.Errorf("anonymous token on alice/app: %d", st)
	}
	if st, _, _ := s.reqAuth(t, "GET", "/v2/", bearer(tok), nil); st != http.StatusOK {
		t.Errorf("anonymous token on /v2/: %d", st)
	}
	// A forged token (signed by another key) and a garbage one: 401.
	if st, _, _ := s.reqAuth(t, "GET", "/v2/bob/app/tags/list", bearer(tok[:len(tok)-4]+"AAAA"), nil); st != http.StatusUnauthorized {
		t.Errorf("tampered token: %d", st)
	}
	// Bad passwords: 401, then 429 past max-failures (5, the tampered
	// token was the first), also for the right password from that address.
	for i := 0; i < 4; i++ {
		if _, st := token("bob=wrong", false); st != http.StatusUnauthorized {
			t.Fatalf("bad password %d: %d", i, st)
		}
	}
	if st, h, b := s.req(t, "GET", "/v2/bob/app/tags/list", bob, nil); st != http.StatusTooManyRequests || !strings.Contains(b, "TOOMANYREQUESTS") || h.Get("Retry-After") == "" {
		t.Errorf("after 5 failures: %d %s", st, b)
	}
}

// TestAdminNeedsAnAdmin: the admin API answers only alice (admins).
func TestAdminNeedsAnAdmin(t *testing.T) {
	admin := freeAddr(t)
	s := tenantServer(t, "--admin-addr", admin)
	for _, c := range []struct {
		user string
		want int
	}{{"", 401}, {bob, 403}, {"alice=wrong", 401}, {alice, 200}} {
		if st, _, b := s.req(t, "GET", s.admin+"/admin/gc/config", c.user, nil); st != c.want {
			t.Errorf("admin API as %q: %d %s, want %d", c.user, st, b, c.want)
		}
	}
	for _, base := range []string{s.base, s.admin} {
		for _, p := range []string{"/healthz", "/readyz"} {
			if st, _, _ := s.req(t, "GET", base+p, "", nil); st != 200 {
				t.Errorf("%s%s: %d", base, p, st)
			}
		}
	}
	if !strings.Contains(s.logs.String(), "user=alice") || !strings.Contains(s.logs.String(), "msg=access") {
		t.Errorf("no access log line naming the user:\n%s", s.logs.String())
	}
}

// TestQuotaAfterAccess: a namespace's quota is told only to those who may
// push there: another tenant is refused for access, with nothing about
// the quota, whether the namespace is over it or not.
func TestQuotaAfterAccess(t *testing.T) {
	s := tenantServer(t, "--quota", "alice=1KiB")
	big := []byte(strings.Repeat("q", 4096))
	d := digestOf(big)
	st, _, b := s.req(t, "POST", "/v2/alice/app/blobs/uploads/?digest="+d, alice, big)
	if st != http.StatusForbidden || !strings.Contains(strings.ToLower(b), "quota") {
		t.Fatalf("alice over her quota: %d %s", st, b)
	}
	for _, user := range []string{bob, ""} {
		st1, _, b1 := s.req(t, "POST", "/v2/alice/app/blobs/uploads/?digest="+d, user, big)
		st2, _, b2 := s.req(t, "POST", "/v2/bob/x/blobs/uploads/?digest="+d, "", big)
		if strings.Contains(strings.ToLower(b1), "quota") || (user == "" && (st1 != st2 || b1 != strings.ReplaceAll(b2, "bob/x", "alice/app"))) {
			t.Errorf("%q pushing to alice/app: %d %s (anonymous to bob/x: %d %s)", user, st1, b1, st2, b2)
		}
	}
}
