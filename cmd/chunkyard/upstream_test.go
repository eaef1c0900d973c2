package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testTools returns the paths of the named tool binaries (from PATH or
// $CHUNKYARD_TOOLS/bin). Missing ones skip the test, except in CI
// (CI set), where scripts/test installs them: there they fail it.
func testTools(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil && os.Getenv("CHUNKYARD_TOOLS") != "" {
			p, err = exec.LookPath(filepath.Join(os.Getenv("CHUNKYARD_TOOLS"), "bin", n))
		}
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("tools not found: %s (scripts/install-tools %s)", strings.Join(missing, ", "), strings.Join(missing, " "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return paths
}

// startDistribution runs the reference registry (CNCF distribution) on
// 127.0.0.1 with its storage in a temp dir, and returns its address and
// process.
func startDistribution(t *testing.T, bin string) (string, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: chunkyard-test
`, filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	var logs logBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	waitHTTP(t, "http://"+addr+"/v2/", done, &logs)
	return addr, cmd
}

func waitHTTP(t *testing.T, u string, exited <-chan struct{}, logs *logBuffer) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s: exited: %s", u, logs.String())
		default:
		}
		if i == 400 {
			t.Fatalf("%s: not up: %v\n%s", u, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// authProxy is a reverse proxy in front of the upstream registry that
// counts the requests it passes and asks for a bearer token the way
// Docker Hub does: /v2/ answers 401 with a Bearer challenge naming its
// /token endpoint, which gives a token for the basic credentials user
// and pass (any, or none, if user is empty).
type authProxy struct {
	srv        *http.Server
	addr       string
	user, pass string
	token      string
	requests   atomic.Int64 // registry API requests passed on
	blobGets   atomic.Int64
	corrupt    atomic.Value // string: a blob path suffix whose body gets a byte flipped
}

func startAuthProxy(t *testing.T, target, user, pass string) *authProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &authProxy{addr: ln.Addr().String(), user: user, pass: pass, token: "tok-" + fmt.Sprint(time.Now().UnixNano())}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		if p.user != "" && (!ok || u != p.user || pw != p.pass) {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"token": p.token, "expires_in": 300})
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+p.token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, p.addr))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v2/" {
			p.requests.Add(1)
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
				p.blobGets.Add(1)
			}
		}
		if c, _ := p.corrupt.Load().(string); c != "" && strings.HasSuffix(r.URL.Path, c) && r.Method == http.MethodGet {
			w = &flipWriter{ResponseWriter: w, at: 1000}
		}
		rp.ServeHTTP(w, r)
	})
	p.srv = &http.Server{Handler: mux}
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

// runTool runs a client binary and returns its stdout.
func runTool(t *testing.T, env []string, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// layoutBlobs returns sha256 -> file content hash of an OCI layout's blobs.
func layoutBlobs(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m[filepath.Base(p)] = sha256.Sum256(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameBlobs(t *testing.T, what, got, want string) {
	t.Helper()
	g, w := layoutBlobs(t, got), layoutBlobs(t, want)
	if len(w) == 0 || len(g) != len(w) {
		t.Fatalf("%s: %d blobs, want %d", what, len(g), len(w))
	}
	for k, v := range w {
		if g[k] != v {
			t.Fatalf("%s: blob %s differs or is missing", what, k)
		}
		if fmt.Sprintf("%x", v) != k {
			t.Fatalf("%s: blob %s is not its digest", what, k)
		}
	}
}

// TestPullThroughUpstream: `serve --upstream` in front of the reference
// registry (behind a token-auth proxy that counts requests). crane and
// regctl pull an image and an index through chunkyard byte for byte as
// they pull them from the upstream directly; the second pull makes no
// upstream request; with the upstream gone (and chunkyard restarted, so
// its tags are asked for) both pull again from the local copy. A blob
// corrupted on the way fails the pull and stores nothing.
func TestPullThroughUpstream(t *testing.T) {
	tools := testTools(t, "registry", "crane", "regctl")
	var err error
	home := t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker")) // the server's keychain

	regAddr, _ := startDistribution(t, tools["registry"])
	proxy := startAuthProxy(t, regAddr, "puller", "s3cret")

	// An image pushed with crane (from a tarball), an index with the
	// library: 3 layers of 4 MiB random data each
	// (CHUNKYARD_PULLTHROUGH_MIB sets the size, for measurements), 2
	// platforms.
	layerMiB := int64(4)
	if v := os.Getenv("CHUNKYARD_PULLTHROUGH_MIB"); v != "" {
		if layerMiB, err = strconv.ParseInt(v, 10, 64); err != nil || layerMiB <= 0 {
			t.Fatalf("CHUNKYARD_PULLTHROUGH_MIB=%q", v)
		}
	}
	img, err := random.Image(layerMiB<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	direct := "127.0.0.1:" + strings.Split(regAddr, ":")[1]
	if err := tarball.WriteToFile(tarPath, mustTag(t, direct+"/lib/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	runTool(t, env, tools["crane"], "push", tarPath, direct+"/lib/app:v1")
	idx, err := random.Index(1<<20, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(mustTag(t, direct+"/lib/multi:latest"), idx); err != nil {
		t.Fatal(err)
	}

	// chunkyard, with the proxy's credentials in a file.
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	data := t.TempDir()
	addr := freeAddr(t)
	serveArgs := []string{"serve", "--addr", addr, "--data", data, "--codec-helpers", t.TempDir(),
		"--upstream", "http://" + proxy.addr, "--upstream-username", "puller", "--upstream-password-file", pwFile,
		"--upstream-tag-ttl", "1h", "--scan-workers", "0"}
	stop := startInProcess(t, addr, serveArgs)

	regctl := func(host string, args ...string) []byte {
		return runTool(t, env, tools["regctl"], append([]string{"--host", "reg=" + host + ",tls=disabled"}, args...)...)
	}
	cranePull := func(ref string) (string, time.Duration) {
		dir := filepath.Join(t.TempDir(), "layout")
		start := time.Now()
		runTool(t, env, tools["crane"], "pull", "--format", "oci", ref, dir)
		return dir, time.Since(start)
	}
	// Directly from the upstream (through the proxy, with the Docker
	// config's credentials), for the bytes and the baseline time.
	os.MkdirAll(filepath.Join(home, ".docker"), 0o700)
	dockerCfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, proxy.addr, base64.StdEncoding.EncodeToString([]byte("puller:s3cret")))
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(dockerCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	want, tDirect := cranePull(proxy.addr + "/lib/app:v1")
	proxy.requests.Store(0)
	proxy.blobGets.Store(0)
	wantMulti := filepath.Join(t.TempDir(), "multi")
	regctl(direct, "image", "copy", direct+"/lib/multi:latest", "ocidir://"+wantMulti+":latest")

	got1, t1 := cranePull(addr + "/lib/app:v1")
	sameBlobs(t, "crane, first pull", got1, want)
	firstReqs := proxy.requests.Load()
	if firstReqs == 0 || proxy.blobGets.Load() != 4 {
		t.Fatalf("first pull: %d upstream requests, %d blob GETs (want 4: config and 3 layers)", firstReqs, proxy.blobGets.Load())
	}
	got2, t2 := cranePull(addr + "/lib/app:v1")
	sameBlobs(t, "crane, second pull", got2, want)
	if n := proxy.requests.Load() - firstReqs; n != 0 {
		t.Fatalf("second pull made %d upstream requests, want 0", n)
	}
	t.Logf("crane pull of 3 x %d MiB: direct from the upstream %v, through chunkyard first %v (%.2fx direct), second %v (%.2fx the first)",
		layerMiB, tDirect.Round(time.Millisecond), t1.Round(time.Millisecond), t1.Seconds()/tDirect.Seconds(),
		t2.Round(time.Millisecond), t2.Seconds()/t1.Seconds())

	gotMulti := filepath.Join(t.TempDir(), "multi")
	regctl(addr, "image", "copy", addr+"/lib/multi:latest", "ocidir://"+gotMulti+":latest")
	sameBlobs(t, "regctl, index", gotMulti, wantMulti)

	// Stored (the tags list is local only), then the upstream goes away.
	for _, rt := range [][2]string{{"lib/app", "v1"}, {"lib/multi", "latest"}} {
		waitTag(t, addr, rt[0], rt[1])
	}
	proxy.srv.Close()
	// A restart forgets the tags' resolutions: the first pull of each
	// asks the upstream, which is gone, and gets the local copy.
	stop()
	stop = startInProcess(t, addr, serveArgs)
	defer stop()
	got3, _ := cranePull(addr + "/lib/app:v1")
	sameBlobs(t, "crane, upstream down", got3, want)
	gotMulti2 := filepath.Join(t.TempDir(), "multi")
	regctl(addr, "image", "copy", addr+"/lib/multi:latest", "ocidir://"+gotMulti2+":latest")
	sameBlobs(t, "regctl, upstream down", gotMulti2, wantMulti)

	// A corrupt transfer (a byte flipped on the way) fails the pull and
	// stores nothing; once the upstream is sound again the image pulls.
	proxy = startAuthProxy(t, regAddr, "puller", "s3cret")
	stop()
	serveArgs[slices.Index(serveArgs, "--upstream")+1] = "http://" + proxy.addr
	stop = startInProcess(t, addr, serveArgs)
	defer stop()
	bad, err := random.Image(1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustTag(t, direct+"/lib/bad:v1"), bad); err != nil {
		t.Fatal(err)
	}
	layers, _ := bad.Layers()
	badDigest, _ := layers[1].Digest()
	proxy.corrupt.Store("/blobs/" + badDigest.String())
	if out, err := exec.Command(tools["crane"], "pull", "--format", "oci", addr+"/lib/bad:v1", filepath.Join(t.TempDir(), "bad")).CombinedOutput(); err == nil {
		t.Fatalf("a pull of a corrupt transfer succeeded: %s", out)
	}
	time.Sleep(time.Second) // what would have been stored by now
	if tags := listTags(t, addr, "lib/bad"); len(tags) != 0 {
		t.Fatalf("an image with a corrupt layer was stored: tags %v", tags)
	}
	proxy.corrupt.Store("")
	wantBad := filepath.Join(t.TempDir(), "bad")
	runTool(t, env, tools["crane"], "pull", "--format", "oci", direct+"/lib/bad:v1", wantBad)
	gotBad, _ := cranePull(addr + "/lib/bad:v1")
	sameBlobs(t, "crane, after a corrupt transfer", gotBad, wantBad)
	proxy.srv.Close()

	// What is neither here nor reachable: a clear error.
	resp, err := http.Get("http://" + addr + "/v2/lib/other/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !bytes.Contains(body, []byte("upstream")) {
		t.Fatalf("manifest with the upstream down: %s %s", resp.Status, body)
	}
}

// startInProcess runs `chunkyard serve` with args in this process until
// the returned function is called (or the test ends).
func startInProcess(t *testing.T, addr string, args []string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs logBuffer
	go func() { done <- run(ctx, args, io.Discard, &logs) }()
	exited := make(chan struct{})
	go func() {
		select {
		case <-done:
			close(exited)
		case <-ctx.Done():
		}
	}()
	waitHTTP(t, "http://"+addr+"/v2/", exited, &logs)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v\n%s", err, logs.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("serve did not stop\n%s", logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// flipWriter flips the byte at offset at of a response body.
type flipWriter struct {
	http.ResponseWriter
	n, at int64
}

func (w *flipWriter) Write(p []byte) (int, error) {
	if i := w.at - w.n; i >= 0 && i < int64(len(p)) {
		p = bytes.Clone(p)
		p[i] ^= 0xff
	}
	w.n += int64(len(p))
	return w.ResponseWriter.Write(p)
}

// listTags returns repo's tags on the server at addr (none if unknown).
func listTags(t *testing.T, addr, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tl struct{ Tags []string }
	json.NewDecoder(resp.Body).Decode(&tl)
	return tl.Tags
}

// waitTag waits until repo lists tag (tags are listed from the local
// index only).
func waitTag(t *testing.T, addr, repo, tag string) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/" + repo + "/tags/list")
		if err == nil {
			var tl struct{ Tags []string }
			json.NewDecoder(resp.Body).Decode(&tl)
			resp.Body.Close()
			for _, x := range tl.Tags {
				if x == tag {
					return
				}
			}
		}
		if i == 1200 {
			t.Fatalf("%s:%s not stored within 60 s", repo, tag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPullThroughTimes measures, when CHUNKYARD_PULLTHROUGH_ROUNDS is set,
// crane pulls of fresh images (3 layers of CHUNKYARD_PULLTHROUGH_MIB,
// default 32) directly from the upstream (through the same proxy),
// through chunkyard the first time and the second time, and logs the
// medians and their ratios. Not an assertion: a measurement.
func TestPullThroughTimes(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("CHUNKYARD_PULLTHROUGH_ROUNDS"))
	if rounds <= 0 {
		t.Skip("set CHUNKYARD_PULLTHROUGH_ROUNDS to measure")
	}
	mib := int64(32)
	if v, err := strconv.ParseInt(os.Getenv("CHUNKYARD_PULLTHROUGH_MIB"), 10, 64); err == nil && v > 0 {
		mib = v
	}
	tools := testTools(t, "registry", "crane")
	home := t.TempDir()
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker")}
	regAddr, _ := startDistribution(t, tools["registry"])
	proxy := startAuthProxy(t, regAddr, "puller", "s3cret")
	os.MkdirAll(filepath.Join(home, ".docker"), 0o700)
	dockerCfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, proxy.addr, base64.StdEncoding.EncodeToString([]byte("puller:s3cret")))
	os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(dockerCfg), 0o600)
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret"), 0o600)
	addr := freeAddr(t)
	startInProcess(t, addr, []string{"serve", "--addr", addr, "--data", t.TempDir(), "--codec-helpers", t.TempDir(),
		"--upstream", "http://" + proxy.addr, "--upstream-username", "puller", "--upstream-password-file", pwFile,
		"--upstream-tag-ttl", "1h", "--scan-workers", "0"})
	pull := func(ref string) time.Duration {
		start := time.Now()
		runTool(t, env, tools["crane"], "pull", "--format", "oci", ref, filepath.Join(t.TempDir(), "l"))
		return time.Since(start)
	}
	var direct, first, second []time.Duration
	for i := range rounds {
		img, err := random.Image(mib<<20, 3)
		if err != nil {
			t.Fatal(err)
		}
		repo := fmt.Sprintf("/bench/app%d:v1", i)
		if err := remote.Write(mustTag(t, regAddr+repo), img); err != nil {
			t.Fatal(err)
		}
		direct = append(direct, pull(proxy.addr+repo))
		first = append(first, pull(addr+repo))
		second = append(second, pull(addr+repo))
	}
	med := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	md, m1, m2 := med(direct), med(first), med(second)
	t.Logf("crane pull of 3 x %d MiB, median of %d: direct %v, first through chunkyard %v (%.2fx direct), second %v (%.2fx the first, %.2fx direct)",
		mib, rounds, md.Round(time.Millisecond), m1.Round(time.Millisecond), m1.Seconds()/md.Seconds(),
		m2.Round(time.Millisecond), m2.Seconds()/m1.Seconds(), m2.Seconds()/md.Seconds())
	t.Logf("direct %v\nfirst %v\nsecond %v", direct, first, second)
}
