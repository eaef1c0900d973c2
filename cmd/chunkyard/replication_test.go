package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/replication"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// linkProxy stands between two nodes: it forwards the protocol's requests
// and lets a test act on them (kill a node, corrupt a chunk).
type linkProxy struct {
	target string // host:port
	srv    *httptest.Server
	// corrupt > 0: flip a byte of the next chunks requests' bodies.
	corrupt atomic.Int32
	// hook, if set, sees each request path first; false drops the request
	// (502).
	mu   sync.Mutex
	hook func(path string) bool
	seen sync.Map // path -> count
	// A link's shape (benchmarks): each way delayed by half the RTT and
	// capped at rate bytes per second (0: no cap).
	halfRTT time.Duration
	rate    float64
	limMu   sync.Mutex
	next    time.Time
	bytes   atomic.Int64 // bodies both ways
}

// reserve waits until n more bytes fit the link's rate.
func (p *linkProxy) reserve(n int) {
	p.bytes.Add(int64(n))
	if p.rate <= 0 || n == 0 {
		return
	}
	p.limMu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	until := p.next
	p.limMu.Unlock()
	time.Sleep(time.Until(until))
}

type throttledWriter struct {
	w http.ResponseWriter
	p *linkProxy
}

func (t throttledWriter) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n := min(len(b)-done, 64<<10)
		t.p.reserve(n)
		m, err := t.w.Write(b[done : done+n])
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	p := &linkProxy{target: target}
	client := &http.Client{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		n, _ := p.seen.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		p.mu.Lock()
		hook := p.hook
		p.mu.Unlock()
		if hook != nil && !hook(r.URL.Path) {
			http.Error(w, "dropped by the test", http.StatusBadGateway)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/chunks") && len(body) > 100 && p.corrupt.Load() > 0 {
			p.corrupt.Add(-1)
			body = bytes.Clone(body)
			body[len(body)-1] ^= 0x55 // the last chunk's stored bytes
		}
		time.Sleep(p.halfRTT)
		p.reserve(len(body))
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.target+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		time.Sleep(p.halfRTT)
		w.WriteHeader(resp.StatusCode)
		io.Copy(throttledWriter{w, p}, resp.Body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *linkProxy) setHook(h func(string) bool) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

func (p *linkProxy) count(path string) int64 {
	n, ok := p.seen.Load(replication.PathPrefix + path)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

var (
	replBinOnce sync.Once
	replBin     string
	replBinErr  error
)

func chunkyardBinary(t testing.TB) string {
	if bin := os.Getenv("CHUNKYARD_BIN"); bin != "" {
		return bin
	}
	replBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chunkyard-repl-bin")
		if err != nil {
			replBinErr = err
			return
		}
		replBin = filepath.Join(dir, "chunkyard")
		out, err := exec.Command("go", "build", "-o", replBin, ".").CombinedOutput()
		if err != nil {
			replBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if replBinErr != nil {
		t.Fatal(replBinErr)
	}
	return replBin
}

// node is one region: a chunkyard process on its own data dir.
type node struct {
	name, data, cfg, addr string
	args                  []string
	srv                   *server
}

func (n *node) start(t testing.TB, bin string) {
	t.Helper()
	s := &server{addr: n.addr, log: &logBuffer{}, done: make(chan error, 1)}
	args := append([]string{"serve", "--addr", n.addr, "--data", n.data, "--gc-config", n.cfg,
		"--pack-size", "1048576", "--log-level", "info", "--codec-helpers", filepath.Join(n.data, "..", "nohelpers"),
		"--region", n.name}, n.args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + n.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-s.done:
			t.Fatalf("%s: server exited: %v\n%s", n.name, err, s.log.String())
		default:
		}
		if i == 600 {
			t.Fatalf("%s: server did not start\n%s", n.name, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.srv = s
}

func (n *node) status(t *testing.T) []replication.PeerStats {
	t.Helper()
	resp, err := http.Get("http://" + n.addr + replication.PathPrefix + "status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Peers []replication.PeerStats }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Peers
}

// drained waits until n has nothing pending for any peer.
func (n *node) drained(t *testing.T, within time.Duration) replication.PeerStats {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := n.status(t)
		if len(st) == 1 && st[0].Pending == 0 {
			return st[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: replication queue not drained: %+v\n%s", n.name, st, n.srv.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) ref(t *testing.T, ref string) string { return n.addr + "/" + ref }

// newPair starts two regions a and b, each replicating to the other
// through a linkProxy.
func newPair(t *testing.T) (a, b *node, ab, ba *linkProxy) {
	bin := chunkyardBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gc.toml")
	if err := os.WriteFile(cfg, []byte("interval = \"1h\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a = &node{name: "a", data: filepath.Join(dir, "a", "data"), cfg: cfg, addr: freeAddr(t)}
	b = &node{name: "b", data: filepath.Join(dir, "b", "data"), cfg: cfg, addr: freeAddr(t)}
	ab, ba = newLinkProxy(t, b.addr), newLinkProxy(t, a.addr)
	a.args = []string{"--peer", ab.srv.URL}
	b.args = []string{"--peer", ba.srv.URL}
	a.start(t, bin)
	b.start(t, bin)
	t.Cleanup(func() {
		for _, n := range []*node{a, b} {
			if n.srv != nil && n.srv.cmd.ProcessState == nil {
				n.srv.kill(t)
			}
		}
	})
	return a, b, ab, ba
}

func refOn(t *testing.T, n *node, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(n.addr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func craneBin() string {
	if dir := os.Getenv("CHUNKYARD_TOOLS"); dir != "" {
		if p := filepath.Join(dir, "bin", "crane"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// sameImage checks that ref on n pulls byte for byte as img: the
// manifest, the config and every layer.
func sameImage(t *testing.T, n *node, ref string, img v1.Image) {
	t.Helper()
	got, err := remote.Image(refOn(t, n, ref))
	if err != nil {
		t.Fatalf("%s: pull %s: %v", n.name, ref, err)
	}
	wantRaw, _ := img.RawManifest()
	gotRaw, err := got.RawManifest()
	if err != nil || !bytes.Equal(gotRaw, wantRaw) {
		t.Fatalf("%s: manifest of %s differs (%v)", n.name, ref, err)
	}
	wantLayers, _ := img.Layers()
	for _, l := range wantLayers {
		d, _ := l.Digest()
		gl, err := got.LayerByDigest(d)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := gl.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil || "sha256:"+hex.EncodeToString(h.Sum(nil)) != d.String() {
			t.Fatalf("%s: layer %s of %s: %v", n.name, d, ref, err)
		}
	}
}

// has reports whether ref's manifest is visible on n (and, if so, that
// everything it names pulls: nothing half-visible).
func has(t *testing.T, n *node, ref string) bool {
	t.Helper()
	img, err := remote.Image(refOn(t, n, ref))
	if err != nil {
		return false
	}
	if _, err := img.ConfigFile(); err != nil {
		t.Fatalf("%s: %s visible without its config: %v", n.name, ref, err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			t.Fatalf("%s: %s visible without its layer: %v", n.name, ref, err)
		}
	}
	return true
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !ok() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestReplication runs two regions as real processes, each replicating
// to the other through a proxy, and checks: an image pushed to one pulls
// byte for byte from the other (crane, if installed), a rebuild ships
// fewer bytes than its new blobs, a peer down during pushes catches up,
// a corrupted chunk on the wire is rejected and sent again, the receiver
// and the sender SIGKILLed mid-transfer lose nothing and show nothing
// half-received, and the same tag pushed in both regions at once
// converges.
func TestReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	a, b, ab, _ := newPair(t)
	bin := chunkyardBinary(t)

	// 1. Replicate an image; pull it from b byte for byte.
	img1 := killImage(t, 1)
	pushTo(t, img1, a, "app/web:v1")
	lag := waitFor(t, "v1 on b", 30*time.Second, func() bool { return has(t, b, "app/web:v1") })
	sameImage(t, b, "app/web:v1", img1)
	c := craneBin()
	if c == "" && os.Getenv("CHUNKYARD_REQUIRE_TOOLS") != "" {
		t.Fatal("crane not found (CHUNKYARD_TOOLS/bin or PATH)")
	}
	if c != "" {
		out, err := exec.Command(c, "manifest", "--insecure", b.ref(t, "app/web:v1")).Output()
		want, _ := img1.RawManifest()
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("crane manifest from b: %v", err)
		}
		dir := t.TempDir()
		if out, err := exec.Command(c, "pull", "--insecure", "--format", "oci", b.ref(t, "app/web:v1"), dir).CombinedOutput(); err != nil {
			t.Fatalf("crane pull from b: %v\n%s", err, out)
		}
	}
	// The layers were pre-encoded into b's layer cache by their check.
	waitFor(t, "v1's layers in b's layer cache", 10*time.Second, func() bool {
		ls, _ := img1.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			if !cacheHas(filepath.Join(b.data, "layer-cache"), d.Hex) {
				return false
			}
		}
		return true
	})
	st1 := a.drained(t, 30*time.Second)
	t.Logf("first image: on b after %s; wire %d B, whole blobs %d B", lag, st1.BytesSent+st1.BytesReceived, st1.WholeBlobBytes)

	// 2. A rebuild (shared layer rebuilt with new mtimes) ships less than
	// its new blobs.
	img2 := killImage(t, 2)
	pushTo(t, img2, a, "app/web:v2")
	waitFor(t, "v2 on b", 30*time.Second, func() bool { return has(t, b, "app/web:v2") })
	sameImage(t, b, "app/web:v2", img2)
	st2 := a.drained(t, 30*time.Second)
	wire := st2.BytesSent + st2.BytesReceived - st1.BytesSent - st1.BytesReceived
	whole := st2.WholeBlobBytes - st1.WholeBlobBytes
	t.Logf("rebuild: wire %d B, whole blobs %d B (%.2fx)", wire, whole, float64(whole)/float64(wire))
	if whole <= 0 || wire >= whole {
		t.Errorf("rebuild shipped %d bytes on the wire, whole-blob replication would ship %d", wire, whole)
	}

	// 3. b down during pushes, then back: catch-up.
	b.srv.kill(t)
	for i := 3; i < 6; i++ {
		pushTo(t, killImage(t, uint64(i)), a, fmt.Sprintf("app/web:v%d", i))
	}
	time.Sleep(time.Second) // the sender fails and backs off meanwhile
	b.start(t, bin)
	for i := 3; i < 6; i++ {
		waitFor(t, fmt.Sprintf("v%d on b after its restart", i), 60*time.Second, func() bool { return has(t, b, fmt.Sprintf("app/web:v%d", i)) })
	}
	sameImage(t, b, "app/web:v5", killImage(t, 5))
	a.drained(t, 30*time.Second)

	// 4. A corrupted chunk on the wire is rejected; the retry gets through.
	ab.corrupt.Store(1)
	img6 := killImage(t, 6)
	pushTo(t, img6, a, "app/web:v6")
	waitFor(t, "v6 on b", 60*time.Second, func() bool { return has(t, b, "app/web:v6") })
	sameImage(t, b, "app/web:v6", img6)
	if ab.corrupt.Load() != 0 || !strings.Contains(b.srv.log.String(), "rejected a chunk") {
		t.Fatalf("the corrupted chunk was not seen and rejected by b\n%s", b.srv.log.String())
	}
	a.drained(t, 30*time.Second)

	// 5. The receiver SIGKILLed mid-transfer (its chunks stored, the blob
	// recipes not yet): nothing half-visible, caught up after restart.
	var once sync.Once
	killed := make(chan struct{})
	ab.setHook(func(path string) bool {
		if strings.HasSuffix(path, "/blobs") {
			once.Do(func() { b.srv.kill(t); close(killed) })
			return false
		}
		return true
	})
	img7 := killImage(t, 7)
	pushTo(t, img7, a, "app/web:v7")
	<-killed
	ab.setHook(nil)
	b.start(t, bin)
	waitFor(t, "v7 on b after a receiver kill", 60*time.Second, func() bool { return has(t, b, "app/web:v7") })
	sameImage(t, b, "app/web:v7", img7)
	a.drained(t, 30*time.Second)

	// 6. The sender SIGKILLed mid-transfer: b shows nothing until a is
	// back and resumes.
	once = sync.Once{}
	killed = make(chan struct{})
	ab.setHook(func(path string) bool {
		if strings.HasSuffix(path, "/blobs") {
			once.Do(func() { a.srv.kill(t); close(killed) })
			return false
		}
		return true
	})
	img8 := killImage(t, 8)
	pushTo(t, img8, a, "app/web:v8")
	<-killed
	ab.setHook(nil)
	if has(t, b, "app/web:v8") {
		t.Fatal("v8 visible on b before its sender finished")
	}
	a.start(t, bin)
	waitFor(t, "v8 on b after a sender kill", 60*time.Second, func() bool { return has(t, b, "app/web:v8") })
	sameImage(t, b, "app/web:v8", img8)

	// 7. The same tag pushed in both regions at once converges to one
	// value everywhere (the later stamp, ties to the greater region).
	imgA, imgB := killImage(t, 100), killImage(t, 200)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pushTo(t, imgA, a, "app/web:race") }()
	go func() { defer wg.Done(); pushTo(t, imgB, b, "app/web:race") }()
	wg.Wait()
	a.drained(t, 60*time.Second)
	b.drained(t, 60*time.Second)
	da, db := tagDigest(t, a, "app/web:race"), tagDigest(t, b, "app/web:race")
	if da != db {
		t.Fatalf("tag race did not converge: a has %s, b has %s", da, db)
	}
	t.Logf("tag race converged on %s", da)

	// 8. A third node pulls through a at chunk level (--pull-from-peer),
	// byte for byte, keeps what it pulled, and serves it with a gone.
	cn := &node{name: "c", data: filepath.Join(filepath.Dir(filepath.Dir(a.data)), "c", "data"), cfg: a.cfg, addr: freeAddr(t),
		args: []string{"--pull-from-peer", "http://" + a.addr}}
	cn.start(t, bin)
	t.Cleanup(func() {
		if cn.srv.cmd.ProcessState == nil {
			cn.srv.kill(t)
		}
	})
	sameImage(t, cn, "app/web:v8", img8)
	waitFor(t, "v8 kept on c", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + cn.addr + "/v2/_catalog")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "app/web")
	})
	time.Sleep(500 * time.Millisecond) // the tag is stored once the image is
	a.srv.kill(t)
	sameImage(t, cn, "app/web:v8", img8)
}

// cacheHas reports whether a file of the layer cache in dir is named
// after hex.
func cacheHas(dir, hex string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(d.Name(), hex) {
			found = true
		}
		return nil
	})
	return found
}

func pushTo(t *testing.T, img v1.Image, n *node, ref string) {
	t.Helper()
	if err := remote.Write(refOn(t, n, ref), img); err != nil {
		t.Fatalf("push %s to %s: %v", ref, n.name, err)
	}
}

func tagDigest(t *testing.T, n *node, ref string) string {
	t.Helper()
	d, err := remote.Head(refOn(t, n, ref))
	if err != nil {
		t.Fatalf("%s: %s: %v", n.name, ref, err)
	}
	return d.Digest.String()
}

// TestReplicationAuth: with auth on at the receiver, the node-to-node
// endpoints take an admin's credentials only: the sender with a
// non-admin's credentials gets 403 and retries (nothing visible); once
// its configuration names the admin, the image arrives.
func TestReplicationAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	bin := chunkyardBinary(t)
	dir := t.TempDir()
	gcCfg := filepath.Join(dir, "gc.toml")
	os.WriteFile(gcCfg, []byte("interval = \"1h\"\n"), 0o644)
	htp := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htp, "repl=repl-pass", "ci=ci-pass")
	bCfg := filepath.Join(dir, "b.toml")
	os.WriteFile(bCfg, []byte(fmt.Sprintf("[auth]\nhtpasswd = %q\nadmins = [\"repl\"]\n", htp)), 0o644)
	b := &node{name: "b", data: filepath.Join(dir, "b", "data"), cfg: gcCfg, addr: freeAddr(t), args: []string{"--config", bCfg}}
	replCfg := func(user, pass string) string {
		p := filepath.Join(dir, user+".toml")
		os.WriteFile(p, []byte(fmt.Sprintf("[[peer]]\nname = \"b\"\nurl = \"http://%s\"\nusername = %q\npassword = %q\n", b.addr, user, pass)), 0o644)
		return p
	}
	a := &node{name: "a", data: filepath.Join(dir, "a", "data"), cfg: gcCfg, addr: freeAddr(t),
		args: []string{"--replication-config", replCfg("ci", "ci-pass")}}
	b.start(t, bin)
	a.start(t, bin)
	t.Cleanup(func() {
		for _, n := range []*node{a, b} {
			if n.srv.cmd.ProcessState == nil {
				n.srv.kill(t)
			}
		}
	})
	img := killImage(t, 42)
	pushTo(t, img, a, "app/auth:v1")
	waitFor(t, "a refused by b", 30*time.Second, func() bool {
		st := a.status(t)
		return len(st) == 1 && st[0].Errors > 0 && strings.Contains(st[0].LastError, "403")
	})
	ref, _ := name.ParseReference(b.addr+"/app/auth:v1", name.Insecure)
	auth := remote.WithAuth(&authn.Basic{Username: "ci", Password: "ci-pass"})
	if _, err := remote.Head(ref, auth); err == nil {
		t.Fatal("the image reached b with a non-admin's credentials")
	}
	a.srv.stop(t)
	a.args = []string{"--replication-config", replCfg("repl", "repl-pass")}
	a.start(t, bin)
	a.drained(t, 60*time.Second)
	got, err := remote.Image(ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.RawManifest()
	if raw, _ := got.RawManifest(); !bytes.Equal(raw, want) {
		t.Fatal("manifest differs on b")
	}
	// Without credentials the endpoints answer 401.
	resp, err := http.Post("http://"+b.addr+replication.PathPrefix+"chunks/check", "application/json", strings.NewReader(`{"ids":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous replication request: HTTP %d", resp.StatusCode)
	}
}
