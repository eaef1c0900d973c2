package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// authServer is a `chunkyard serve` run in process on a real port.
type authServer struct {
	base   string // http(s)://host:port
	host   string
	admin  string // admin base URL, if any
	client *http.Client
	dir    string
	logs   *logBuffer
}

// writeHtpasswd writes an htpasswd file of user=password pairs.
func writeHtpasswd(t testing.TB, path string, users ...string) {
	t.Helper()
	var b strings.Builder
	for _, up := range users {
		u, p, _ := strings.Cut(up, "=")
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startAuthServer runs serve with args (plus --addr, --data) until the
// test ends; client trusts the given TLS config if any.
func startAuthServer(t testing.TB, tlsCfg *tls.Config, args ...string) *authServer {
	t.Helper()
	s := &authServer{dir: t.TempDir(), logs: &logBuffer{}}
	addr := freeAddr(t)
	s.host = addr
	scheme := "http"
	tr := &http.Transport{}
	if tlsCfg != nil {
		scheme = "https"
		tr.TLSClientConfig = tlsCfg
		tr.ForceAttemptHTTP2 = true
	}
	s.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	s.base = scheme + "://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	full := append([]string{"serve", "--addr", addr, "--data", filepath.Join(s.dir, "data"), "--convert-workers", "0", "--scan-workers", "0"}, args...)
	for i, a := range args {
		if a == "--admin-addr" {
			s.admin = scheme + "://" + args[i+1]
		}
	}
	go func() { done <- run(ctx, full, io.Discard, s.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	for i := 0; ; i++ {
		resp, err := s.client.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, s.logs.String())
		default:
		}
		if i == 200 {
			t.Fatalf("server not ready: %v\n%s", err, s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// req makes a request with basic auth user=password ("" for none) and
// returns the status, headers and body.
func (s *authServer) req(t testing.TB, method, path, user string, body []byte) (int, http.Header, string) {
	t.Helper()
	return s.reqAuth(t, method, path, basicHeader(user), body)
}

func basicHeader(user string) string {
	if user == "" {
		return ""
	}
	u, p, _ := strings.Cut(user, "=")
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(u, p)
	return r.Header.Get("Authorization")
}

func (s *authServer) reqAuth(t testing.TB, method, path, authz string, body []byte) (int, http.Header, string) {
	t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = s.base + path
	}
	r, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	if strings.Contains(path, "/manifests/") && method == http.MethodPut {
		r.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	}
	resp, err := s.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// pushBlob uploads b to repo in one POST as user; it must be created.
func (s *authServer) pushBlob(t *testing.T, user, repo string, b []byte) string {
	t.Helper()
	d := digestOf(b)
	st, _, body := s.req(t, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, user, b)
	if st != http.StatusCreated {
		t.Fatalf("push %s to %s as %s: %d %s", d, repo, user, st, body)
	}
	return d
}

// pushImage pushes a config, one layer and a manifest tagged tag.
func (s *authServer) pushImage(t *testing.T, user, repo, tag string, layer []byte) (manifest, layerDigest string) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := s.pushBlob(t, user, repo, cfg)
	ld := s.pushBlob(t, user, repo, layer)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		cd, len(cfg), ld, len(layer))
	st, _, body := s.req(t, "PUT", "/v2/"+repo+"/manifests/"+tag, user, []byte(m))
	if st != http.StatusCreated {
		t.Fatalf("manifest push to %s: %d %s", repo, st, body)
	}
	return digestOf([]byte(m)), ld
}

// token fetches a token for user=password from the built-in endpoint.
func (s *authServer) token(t testing.TB, user string, scopes ...string) string {
	t.Helper()
	q := "service=chunkyard"
	for _, sc := range scopes {
		q += "&scope=" + sc
	}
	st, _, b := s.req(t, "GET", "/token?"+q, user, nil)
	var out struct{ Token string }
	json.Unmarshal([]byte(b), &out)
	if st != http.StatusOK || out.Token == "" {
		t.Fatalf("token: %d %s", st, b)
	}
	return out.Token
}
