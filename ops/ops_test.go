package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/ops"
	"github.com/chunkyard/chunkyard/ops/opstest"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/chunkyard/chunkyard/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// env is a registry on the HTTP stack with the usage tracker's quota and
// the metrics in front, as serve puts them.
type env struct {
	t       testing.TB
	dir     string
	graph   *refgraph.Graph
	store   *chunkstore.Store
	usage   *ops.UsageTracker
	metrics *ops.Metrics
	api     http.Handler // the registry API alone
	host    string       // the API behind the quota and the metrics
	busy    atomic.Int64 // requests in the handler
}

// quiesce waits until no request is in the handler: a client that gave
// up (a refused push cancels its other uploads) may leave one finishing.
func (e *env) quiesce() {
	for deadline := time.Now().Add(10 * time.Second); e.busy.Load() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatal("requests still in the handler after 10 s")
		}
	}
}

func newEnv(t testing.TB, quotas map[string]int64) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	ctx := context.Background()
	var err error
	e.store, err = chunkstore.Open(ctx, chunkstore.Options{Dir: filepath.Join(e.dir, "store"), PackSize: 1 << 20,
		MinChunk: 16 << 10, AverageBits: 16, MaxChunk: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	e.graph, err = refgraph.Open(filepath.Join(e.dir, "index"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	svc, err := registry.New(e.graph, e.store, registry.Options{UploadDir: filepath.Join(e.dir, "uploads"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.usage = ops.NewUsageTracker(e.graph, ops.UsageOptions{TempDir: e.dir, Quotas: quotas, Logger: log})
	e.metrics = ops.NewMetrics(ops.Sources{Graph: e.graph, Service: svc, Store: e.store, Usage: e.usage})
	e.api = ocihttp.NewHandler(svc, ocihttp.Options{Logger: log})
	front := e.metrics.Middleware(e.usage.Quota(e.api, svc))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.busy.Add(1)
		defer e.busy.Add(-1)
		front.ServeHTTP(w, r)
	}))
	e.host = strings.TrimPrefix(srv.URL, "http://")
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
		e.store.Close()
		e.graph.Close()
	})
	return e
}

func (e *env) ref(s string) name.Reference {
	r, err := name.ParseReference(e.host+"/"+s, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func randomLayer(seed uint64, n int) v1.Layer {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return static.NewLayer(b, types.OCILayer)
}

func image(t testing.TB, layers ...v1.Layer) v1.Image {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// fsck fails the test unless the index checks clean.
func (e *env) fsck() {
	e.t.Helper()
	r, err := e.graph.CheckWith(context.Background(), refgraph.CheckOptions{TempDir: e.dir})
	if err != nil {
		e.t.Fatal(err)
	}
	if !r.OK() {
		e.t.Fatalf("fsck: %+v", r.Problems)
	}
}

func isDenied(err error) bool { return err != nil && strings.Contains(err.Error(), "DENIED") }

// deniedBody checks an answer is 403 with the spec's DENIED code.
func deniedBody(t *testing.T, resp *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var eb struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if resp.StatusCode != http.StatusForbidden || json.Unmarshal(body, &eb) != nil || len(eb.Errors) != 1 || eb.Errors[0].Code != "DENIED" {
		t.Fatalf("answer %d %s, want 403 DENIED", resp.StatusCode, body)
	}
}

func TestQuotaRefusesAndStoresNothing(t *testing.T) {
	const quota = 600 << 10
	e := newEnv(t, map[string]int64{"team": quota})
	ctx := context.Background()
	// 400 KiB of random layers: under the quota.
	first := image(t, randomLayer(1, 200<<10), randomLayer(2, 200<<10))
	if err := remote.Write(e.ref("team/app:1"), first); err != nil {
		t.Fatal(err)
	}
	if _, err := e.usage.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	q := e.usage.Quotas()
	if len(q) != 1 || q[0].Estimate < 400<<10 || q[0].Estimate > 420<<10 {
		t.Fatalf("quota state after the first push: %+v", q)
	}
	uploadsBefore := dirEntries(t, filepath.Join(e.dir, "uploads"))

	// A client push (ggcr streams its layers in PATCHes without a length)
	// of 300 KiB more, into another repository of the namespace: refused.
	// Its config blob (a few hundred bytes, under the quota) may be
	// stored whole before; the layer is not stored at all, and the image
	// is not there.
	layer := randomLayer(3, 300<<10)
	second := image(t, layer)
	if err := remote.Write(e.ref("team/other:1"), second); !isDenied(err) {
		t.Fatalf("push past the quota: %v, want DENIED", err)
	}
	e.quiesce()
	ld, _ := layer.Digest()
	if _, err := e.graph.Blob(digest.Digest(ld.String())); err == nil {
		t.Fatal("the refused layer is indexed")
	}
	if _, err := remote.Head(e.ref("team/other:1")); err == nil {
		t.Fatal("the refused image is there")
	}
	before := e.graph.Stats()
	// A monolithic POST with its length: refused before a byte is read.
	big := bytes.Repeat([]byte("x"), 300<<10)
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/team/app/blobs/uploads/?digest=%s", e.host, digest.FromBytes(big)),
		"application/octet-stream", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	deniedBody(t, resp)
	// A chunked upload: a first PATCH under the quota passes, the
	// finishing PUT that takes it past is refused.
	loc := startUpload(t, e.host, "team/app")
	half := big[:150<<10]
	req, _ := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(half))
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", len(half)-1))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH under the quota: %v %v", resp, err)
	}
	resp.Body.Close()
	loc = absolute(e.host, resp.Header.Get("Location"))
	req, _ = http.NewRequest(http.MethodPut, loc+"&digest="+digest.FromBytes(big).String(), bytes.NewReader(big[len(half):]))
	if !strings.Contains(loc, "?") {
		req, _ = http.NewRequest(http.MethodPut, loc+"?digest="+digest.FromBytes(big).String(), bytes.NewReader(big[len(half):]))
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	deniedBody(t, resp)

	// Nothing of the refused pushes is stored; what was is intact.
	after := e.graph.Stats()
	if after.Blobs != before.Blobs || after.LiveStoredBytes != before.LiveStoredBytes || after.Repos != before.Repos {
		t.Errorf("refused pushes changed the index: before %+v, after %+v", before, after)
	}
	e.fsck()
	if err := registrytest.PullVerify(e.ref("team/app:1")); err != nil {
		t.Fatalf("pull after refusals: %v", err)
	}
	if q := e.usage.Quotas(); q[0].Refusals != 3 {
		t.Errorf("refusals counted %d, want 3", q[0].Refusals)
	}
	// No quota elsewhere: the same push into another namespace passes.
	if err := remote.Write(e.ref("free/other:1"), second); err != nil {
		t.Fatal(err)
	}
	// Shared bytes do not count against the quota: the first image again
	// in another namespace makes its bytes shared; the team's unique
	// bytes drop, and the push refused before now fits.
	if err := remote.Write(e.ref("mirror/app:1"), first); err != nil {
		t.Fatal(err)
	}
	if _, err := e.usage.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if q := e.usage.Quotas(); q[0].Estimate != 0 {
		t.Fatalf("unique bytes of team with everything shared: %+v", q)
	}
	if err := remote.Write(e.ref("team/other:1"), second); err != nil {
		t.Fatalf("push after the bytes became shared: %v", err)
	}
	e.fsck()
	if n := len(dirEntries(t, filepath.Join(e.dir, "uploads"))); n > len(uploadsBefore)+2 {
		t.Logf("upload sessions left by refused pushes: %d (expire with the upload TTL)", n-len(uploadsBefore))
	}
}

func startUpload(t *testing.T, host, repo string) string {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", host, repo), "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %v %v", resp, err)
	}
	resp.Body.Close()
	return absolute(host, resp.Header.Get("Location"))
}

func absolute(host, loc string) string {
	if strings.HasPrefix(loc, "/") {
		return "http://" + host + loc
	}
	return loc
}

func dirEntries(t *testing.T, dir string) []os.DirEntry {
	es, _ := os.ReadDir(dir)
	return es
}

// countingTransport counts the requests a client makes and their answers.
type countingTransport struct {
	mu     sync.Mutex
	n      map[string]int // "METHOD STATUS"
	inner  http.RoundTripper
	total  int
	errors int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.errors++
		return resp, err
	}
	c.total++
	c.n[fmt.Sprintf("%s %d", r.Method, resp.StatusCode)]++
	return resp, nil
}

func TestMetricsReconcile(t *testing.T) {
	e := newEnv(t, map[string]int64{"team": 1 << 30})
	ctx := context.Background()
	ct := &countingTransport{n: map[string]int{}, inner: http.DefaultTransport}
	layer := randomLayer(9, 300<<10)
	img := image(t, layer, randomLayer(10, 100<<10))
	for _, ref := range []string{"team/a:1", "team/b:1", "other/c:1"} {
		if err := remote.Write(e.ref(ref), img, remote.WithTransport(ct)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range []string{"team/a:1", "other/c:1"} {
		if err := registrytest.PullVerify(e.ref(ref)); err != nil { // not counted by ct
			t.Fatal(err)
		}
	}
	if _, err := e.usage.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	admin := httptest.NewServer(e.metrics.Handler())
	defer admin.Close()
	s, err := opstest.Get(admin.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Requests: every one the pushing client made is counted, under its
	// method and status; the pulls come on top.
	for ms, n := range ct.n {
		method, status, _ := strings.Cut(ms, " ")
		if got := s.Sum("chunkyard_http_requests_total", "method="+method, "status="+status); got < float64(n) {
			t.Errorf("%s answered %s: %d made by the client, %g counted", method, status, n, got)
		}
	}
	puts := s.Sum("chunkyard_http_requests_total", "method=PUT", "route="+ops.RouteManifest, "status=201")
	if puts != 3 {
		t.Errorf("manifest PUTs counted %g, want 3", puts)
	}
	if h := s.Sum("chunkyard_http_request_duration_seconds", "method=PUT", "route="+ops.RouteManifest); h != 3 {
		t.Errorf("manifest PUT latencies observed %g, want 3", h)
	}
	// Bytes in: at least the layers pushed (the first push stores them,
	// the others find them by HEAD); bytes out: at least two pulls.
	size, _ := layer.Size()
	if in := s.Sum("chunkyard_http_request_bytes_total"); in < float64(size) {
		t.Errorf("bytes in %g < a layer's %d", in, size)
	}
	if out := s.Sum("chunkyard_http_response_bytes_total", "route="+ops.RouteBlob); out < 2*float64(size) {
		t.Errorf("blob bytes out %g < two pulls of a layer (%d)", out, 2*size)
	}
	// Stored bytes as `chunkyard stats` counts them, logical bytes and
	// the ratio from the index.
	st, err := e.store.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := e.graph.Stats()
	want := map[string]float64{
		"chunkyard_stored_bytes":      float64(ops.StoredBytes(st, g)),
		"chunkyard_logical_bytes":     float64(g.LogicalBytes),
		"chunkyard_live_stored_bytes": float64(g.LiveStoredBytes),
		"chunkyard_dedup_ratio":       float64(g.LogicalBytes) / float64(ops.StoredBytes(st, g)),
		"chunkyard_repositories":      3,
	}
	for name, w := range want {
		if v, err := s.Value(name); err != nil || v != w {
			t.Errorf("%s = %g (%v), want %g", name, v, err, w)
		}
	}
	// Usage: every byte is shared between the two namespaces.
	rep, _ := e.usage.Last()
	var shares float64
	for _, ns := range []string{"team", "other"} {
		if u := s.Sum("chunkyard_namespace_unique_bytes", "namespace="+ns); u != 0 {
			t.Errorf("%s unique bytes %g, want 0 (all shared)", ns, u)
		}
		shares += s.Sum("chunkyard_namespace_shared_bytes", "namespace="+ns)
	}
	if shares != float64(rep.StoredBytes) || rep.StoredBytes != g.LiveStoredBytes {
		t.Errorf("namespace shares sum to %g, stored bytes %d, live %d", shares, rep.StoredBytes, g.LiveStoredBytes)
	}
	if v := s.Sum("chunkyard_quota_limit_bytes", "namespace=team"); v != 1<<30 {
		t.Errorf("quota limit %g", v)
	}
}
