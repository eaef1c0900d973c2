package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chunkyard/chunkyard/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRegistry serves one manifest (tag "v1" and its digest) and one blob
// of repo "lib/app" behind bearer-token auth: the token service wants
// basic credentials user:pass if user is set. Wrong serves a manifest
// whose Docker-Content-Digest header is not its content's.
type fakeRegistry struct {
	user, pass string
	manifest   []byte
	blob       []byte
	wrong      bool
	tokenAuth  []string // the Authorization headers the token service saw
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		f.tokenAuth = append(f.tokenAuth, r.Header.Get("Authorization"))
		u, p, ok := r.BasicAuth()
		if f.user != "" && (!ok || u != f.user || p != f.pass) {
			http.Error(w, "denied", http.StatusUnauthorized)
			return
		}
		if !strings.Contains(r.URL.RawQuery, "scope=repository%3Alib%2Fapp%3Apull") {
			http.Error(w, "scope "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"token":"t0k"}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer t0k" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="fake"`, r.Host))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	md := digest.FromBytes(f.manifest)
	switch r.URL.Path {
	case "/v2/":
	case "/v2/lib/app/manifests/v1", "/v2/lib/app/manifests/" + md.String():
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		if f.wrong {
			md = digest.FromString("other")
		}
		w.Header().Set("Docker-Content-Digest", md.String())
		w.Header().Set("Content-Length", fmt.Sprint(len(f.manifest)))
		if r.Method == http.MethodGet {
			w.Write(f.manifest)
		}
	case "/v2/lib/app/blobs/" + digest.FromBytes(f.blob).String():
		w.Write(f.blob)
	case "/v2/lib/app/manifests/denied":
		http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusForbidden)
	case "/v2/lib/app/manifests/broken":
		http.Error(w, "boom", http.StatusInternalServerError)
	default:
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
	}
}

func newFake(t *testing.T, user, pass string) (*fakeRegistry, string) {
	f := &fakeRegistry{user: user, pass: pass, manifest: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), blob: []byte("layer bytes")}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func TestClientBasicCredentials(t *testing.T) {
	f, u := newFake(t, "alice", "pw")
	ctx := context.Background()
	c, err := New(Options{URL: u, Username: "alice", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Manifest(ctx, "lib/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Content) != string(f.manifest) || m.Digest != digest.FromBytes(f.manifest) || m.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest = %+v", m)
	}
	st, err := c.StatManifest(ctx, "lib/app", "v1")
	if err != nil || st.Digest != m.Digest || st.Size != m.Size || st.Content != nil {
		t.Fatalf("stat = %+v, %v", st, err)
	}
	r, size, err := c.Blob(ctx, "lib/app", digest.FromBytes(f.blob))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != string(f.blob) || size != int64(len(f.blob)) {
		t.Fatalf("blob %q, size %d", b, size)
	}

	if _, err := c.Manifest(ctx, "lib/app", "nope"); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Fatalf("missing manifest: %v", err)
	}
	if _, _, err := c.Blob(ctx, "lib/app", digest.FromString("x")); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := c.Manifest(ctx, "lib/app", "denied"); !errors.Is(err, registry.ErrManifestUnknown) || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("403: %v", err)
	}
	if _, err := c.Manifest(ctx, "lib/app", "broken"); !errors.Is(err, registry.ErrUpstream) {
		t.Fatalf("500: %v", err)
	}
	f.wrong = true
	if _, err := c.Manifest(ctx, "lib/app", "v1"); !errors.Is(err, registry.ErrUpstream) {
		t.Fatalf("a digest header that is not the content's: %v", err)
	}

	bad, err := New(Options{URL: u, Username: "alice", Password: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Manifest(ctx, "lib/app", "v1"); !errors.Is(err, registry.ErrUpstream) {
		t.Fatalf("wrong password: %v", err)
	}
}

// TestClientDockerConfig: credentials from the Docker config's auths.
func TestClientDockerConfig(t *testing.T) {
	f, u := newFake(t, "bob", "hunter2")
	dir := t.TempDir()
	host := strings.TrimPrefix(u, "http://")
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte("bob:hunter2")))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	c, err := New(Options{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manifest(context.Background(), "lib/app", "v1"); err != nil {
		t.Fatalf("with the Docker config's credentials: %v (token requests: %q)", err, f.tokenAuth)
	}
}

// TestClientAnonymous: no credentials anywhere: an anonymous token.
func TestClientAnonymous(t *testing.T) {
	f, u := newFake(t, "", "")
	c, err := New(Options{URL: u, Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Manifest(context.Background(), "lib/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if len(f.tokenAuth) != 1 || f.tokenAuth[0] != "" {
		t.Fatalf("token requests %q, want one without credentials", f.tokenAuth)
	}
}

func TestClientNames(t *testing.T) {
	for _, tt := range []struct{ url, repo, want string }{
		{"https://registry-1.docker.io", "alpine", "library/alpine"},
		{"https://docker.io", "bitnami/redis", "bitnami/redis"},
		{"https://index.docker.io/", "nginx", "library/nginx"},
		{"https://ghcr.io", "alpine", "alpine"},
		{"http://127.0.0.1:5000", "a/b/c", "a/b/c"},
	} {
		c, err := New(Options{URL: tt.url})
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if got := c.Repository(tt.repo); got != tt.want {
			t.Errorf("%s %s: %s, want %s", tt.url, tt.repo, got, tt.want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:5000", "ftp://x", "https://x/v2", "https://u:p@x", "http://"} {
		if _, err := New(Options{URL: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
