package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// statusProxy is a reverse proxy to a chunkyard that counts the 307s it
// passes on (it does not follow them: the client does).
type statusProxy struct {
	srv       *httptest.Server
	redirects atomic.Int64
}

func newStatusProxy(t *testing.T, addr string) *statusProxy {
	p := &statusProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	rp.ModifyResponse = func(r *http.Response) error {
		if r.StatusCode == http.StatusTemporaryRedirect {
			p.redirects.Add(1)
		}
		return nil
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *statusProxy) host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// redirectImage is an image of a large layer (redirected once cached) and a
// small one (below --redirect-min-size: always served directly).
func redirectImage(t testing.TB, bigSize int) (v1.Image, []byte, []byte) {
	big, small := gzLayer(t, 51, bigSize), gzLayer(t, 52, 64<<10)
	img, err := mutate.AppendLayers(empty.Image,
		static.NewLayer(big, types.DockerLayer), static.NewLayer(small, types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	return img, big, small
}

// get does one GET with basic auth (when user is set), not following
// redirects.
func getNoFollow(t *testing.T, u, user, pass string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// startRedirectNode starts chunkyard with htpasswd auth and redirects to
// the versitygw bucket s.
func startRedirectNode(t *testing.T, s *s3test.Server, extra ...string) *node {
	return startRedirectNodeTB(t, s, extra...)
}

func startRedirectNodeTB(t testing.TB, s *s3test.Server, extra ...string) *node {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_REGION", s.Region)
	dir := t.TempDir()
	gcCfg := filepath.Join(dir, "gc.toml")
	os.WriteFile(gcCfg, []byte("interval = \"1h\"\n"), 0o644)
	htp := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htp, "ci=ci-pass")
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[auth]\nhtpasswd = %q\n", htp)), 0o644)
	n := &node{name: "r", data: filepath.Join(dir, "data"), cfg: gcCfg, addr: freeAddr(t),
		args: append([]string{"--config", cfg, "--s3-endpoint", s.Endpoint,
			"--redirect-s3-bucket", s.Bucket, "--redirect-s3-prefix", "edge"}, extra...)}
	n.start(t, chunkyardBinary(t))
	t.Cleanup(func() {
		if n.srv.cmd.ProcessState == nil {
			n.srv.kill(t)
		}
	})
	return n
}

// TestBlobRedirect pulls an image with crane through chunkyard with
// redirects on: the first pull is served directly and fills the bucket, the
// second is redirected to presigned versitygw URLs for the large layer;
// bytes are exact both times, and access checks still come first.
func TestBlobRedirect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	if os.Getenv("CI") != "" {
		t.Setenv("CHUNKYARD_REQUIRE_S3", "1")
	}
	s := s3test.Start(t)
	crane := craneBin()
	if crane == "" {
		if os.Getenv("CHUNKYARD_TOOLS") != "" || os.Getenv("CI") != "" {
			t.Fatal("crane not found (scripts/install-tools installs it)")
		}
		t.Skip("crane not found")
	}
	n := startRedirectNode(t, s)
	img, big, small := redirectImage(t, 4<<20)
	ref, _ := name.ParseReference(n.addr+"/app/edge:v1", name.Insecure)
	ci := &authn.Basic{Username: "ci", Password: "ci-pass"}
	if err := remote.Write(ref, img, remote.WithAuth(ci)); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	bigD, _ := layers[0].Digest()
	smallD, _ := layers[1].Digest()

	p := newStatusProxy(t, n.addr)
	home := t.TempDir()
	t.Setenv("DOCKER_CONFIG", home)
	if out, err := exec.Command(crane, "auth", "login", p.host(), "-u", "ci", "-p", "ci-pass").CombinedOutput(); err != nil {
		t.Fatalf("crane auth login: %v\n%s", err, out)
	}
	pull := func(dir string) {
		t.Helper()
		out, err := exec.Command(crane, "pull", "--insecure", "--format", "oci", p.host()+"/app/edge:v1", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("crane pull: %v\n%s\nserver log:\n%s", err, out, n.srv.log.String())
		}
		for d, want := range map[v1.Hash][]byte{bigD: big, smallD: small} {
			got, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Hex))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("pulled layer %s: %d bytes, want %d exact (%v)", d, len(got), len(want), err)
			}
		}
	}
	// Nothing is in the bucket yet: served directly.
	pull(filepath.Join(t.TempDir(), "first"))
	if got := p.redirects.Load(); got != 0 {
		t.Fatalf("first pull: %d redirects before anything was uploaded", got)
	}
	// The first pull served the big layer whole: it is uploaded in the
	// background, and then redirected.
	blobURL := "http://" + n.addr + "/v2/app/edge/blobs/" + bigD.String()
	waitFor(t, "the big layer is redirected", 30*time.Second, func() bool {
		return getNoFollow(t, blobURL, "ci", "ci-pass").StatusCode == http.StatusTemporaryRedirect
	})
	before := p.redirects.Load()
	pull(filepath.Join(t.TempDir(), "second"))
	if got := p.redirects.Load() - before; got < 1 {
		t.Fatalf("second pull: %d redirects, want at least 1", got)
	}
	// The small layer stays direct.
	if code := getNoFollow(t, "http://"+n.addr+"/v2/app/edge/blobs/"+smallD.String(), "ci", "ci-pass").StatusCode; code != http.StatusOK {
		t.Fatalf("small layer: HTTP %d, want 200", code)
	}
	// A Range GET is redirected and the bucket honours the range.
	req, _ := http.NewRequest(http.MethodGet, blobURL, nil)
	req.SetBasicAuth("ci", "ci-pass")
	req.Header.Set("Range", "bytes=1000-1999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, big[1000:2000]) {
		t.Fatalf("range via redirect: HTTP %d, %d bytes (exact: %v)", resp.StatusCode, len(part), bytes.Equal(part, big[1000:2000]))
	}
	// Access checks come before the redirect: no credentials, wrong
	// password, and a repository the blob is not linked into.
	if code := getNoFollow(t, blobURL, "", "").StatusCode; code != http.StatusUnauthorized {
		t.Fatalf("anonymous GET: HTTP %d, want 401", code)
	}
	if code := getNoFollow(t, blobURL, "ci", "wrong").StatusCode; code != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d, want 401", code)
	}
	if code := getNoFollow(t, "http://"+n.addr+"/v2/app/other/blobs/"+bigD.String(), "ci", "ci-pass").StatusCode; code != http.StatusNotFound {
		t.Fatalf("blob through a repository it is not in: HTTP %d, want 404", code)
	}
	// HEAD is never redirected.
	req, _ = http.NewRequest(http.MethodHead, blobURL, nil)
	req.SetBasicAuth("ci", "ci-pass")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %v %v", resp, err)
	}

	// A second node on the same bucket, with a CDN in front: it finds the
	// object the first uploaded (HEAD) and redirects to the CDN's URL.
	n2 := startRedirectNode(t, s, "--redirect-base-url", "https://cdn.example/")
	ref2, _ := name.ParseReference(n2.addr+"/app/edge:v1", name.Insecure)
	if err := remote.Write(ref2, img, remote.WithAuth(ci)); err != nil {
		t.Fatal(err)
	}
	resp = getNoFollow(t, "http://"+n2.addr+"/v2/app/edge/blobs/"+bigD.String(), "ci", "ci-pass")
	if want := "https://cdn.example/edge/blobs/sha256/" + bigD.Hex; resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("CDN node: HTTP %d Location %q, want 307 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

func TestRedirectPrefixUnderPacks(t *testing.T) {
	for _, c := range []struct {
		p, outer string
		want     bool
	}{
		{"edge", "", true}, {"edge", "packs", false}, {"packs/edge", "packs/", true},
		{"packs-edge", "packs", false}, {"", "packs", false}, {"", "", true},
	} {
		if got := underPrefix(c.p, c.outer); got != c.want {
			t.Errorf("underPrefix(%q, %q) = %v", c.p, c.outer, got)
		}
	}
}
