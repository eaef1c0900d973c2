package gc_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/s3"
	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/ops"
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
)

// clock is a settable clock shared by the index and the collector: fixed
// at t, or, running, the time plus an offset.
type clock struct {
	mu      sync.Mutex
	t       time.Time
	running bool
	offset  time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return time.Now().Add(c.offset)
	}
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.offset += d
	c.mu.Unlock()
}

// harness is a registry on the HTTP stack with a collector, on a temporary
// data dir, with small chunks and packs so that a test makes many.
type harness struct {
	t     testing.TB
	dir   string
	host  string
	graph *refgraph.Graph
	store *chunkstore.Store
	svc   *registry.Service
	col   *gc.Collector
	clock *clock
	stop  func()
	// The metrics in front of the API, as serve has them, scraped at
	// admin (URL of GET /metrics); served counts every request the API
	// answered, outside the metrics, by method and status.
	admin  string
	served *tally
}

// tally counts the requests a handler answers, by "METHOD STATUS".
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		t.mu.Lock()
		t.n[fmt.Sprintf("%s %d", r.Method, sw.status)]++
		t.mu.Unlock()
	})
}

func (t *tally) counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.n)
}

type statusWriter struct {
	http.ResponseWriter
	status  int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.written, w.status = true, code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type harnessOpts struct {
	convert  bool // run the layer converter
	packSize int64
	running  bool // the clock runs (else it moves only when advanced)
	s3       bool // packs on S3 (a versitygw the test starts)
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: &clock{t: time.Now(), running: o.running}}
	ctx := context.Background()
	if o.packSize == 0 {
		o.packSize = 1 << 20
	}
	sopts := chunkstore.Options{Dir: filepath.Join(h.dir, "store"), PackSize: o.packSize,
		MinChunk: 16 << 10, AverageBits: 16, MaxChunk: 256 << 10}
	if o.s3 {
		srv := s3test.Start(t)
		b, err := s3.New(ctx, s3.Options{Bucket: srv.Bucket, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		sopts.Backend = b
	}
	var err error
	h.store, err = chunkstore.Open(ctx, sopts)
	if err != nil {
		t.Fatal(err)
	}
	h.graph, err = refgraph.Open(filepath.Join(h.dir, "index"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.graph.SetClock(h.clock.now)
	log := slog.New(slog.DiscardHandler)
	opts := registry.Options{UploadDir: filepath.Join(h.dir, "uploads"), Logger: log}
	if o.convert {
		opts.Convert = registry.ConvertOptions{Workers: 1, PendingDir: filepath.Join(h.dir, "pending")}
	}
	h.svc, err = registry.New(h.graph, h.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	bg, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { h.svc.Run(bg); close(done) }()
	h.col = gc.New(h.graph, h.store, log)
	h.col.OnBlobDeleted = h.svc.BlobDeleted
	h.col.Now = h.clock.now
	metrics := ops.NewMetrics(ops.Sources{Graph: h.graph, Service: h.svc, GC: h.col, Store: h.store})
	h.served = &tally{n: map[string]int{}}
	srv := httptest.NewServer(h.served.wrap(metrics.Middleware(ocihttp.NewHandler(h.svc, ocihttp.Options{Logger: log}))))
	h.host = strings.TrimPrefix(srv.URL, "http://")
	admin := httptest.NewServer(metrics.Handler())
	h.admin = admin.URL + "/metrics"
	h.stop = func() {
		admin.Close()
		srv.Close()
		cancel()
		<-done
		h.store.Close()
		h.graph.Close()
	}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) ref(s string) name.Reference {
	h.t.Helper()
	r, err := name.ParseReference(h.host+"/"+s, name.Insecure)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// image builds an image of the given layers (an opaque blob each, or a
// gzip tar when tarred).
func image(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func blobLayer(data []byte) v1.Layer { return static.NewLayer(data, types.OCILayer) }

// tarLayer is a gzip-6 tar of files: shared ones from seed 1, and n of
// its own seed, all with the given mtime.
func tarLayer(t testing.TB, seed uint64, shared, own int, mtime time.Time) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 6)
	tw := tar.NewWriter(zw)
	add := func(name string, r *rand.Rand) {
		data := make([]byte, 8<<10+r.IntN(48<<10))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	base := rand.New(rand.NewPCG(1, 1))
	for i := range shared {
		add(fmt.Sprintf("usr/lib/shared%03d", i), base)
	}
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range own {
		add(fmt.Sprintf("app/own%03d", i), r)
	}
	tw.Close()
	zw.Close()
	return static.NewLayer(buf.Bytes(), types.OCILayer)
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (h *harness) push(ref string, img v1.Image) v1.Hash {
	h.t.Helper()
	if err := remote.Write(h.ref(ref), img); err != nil {
		h.t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// pullCheck pulls ref from host and checks every blob against its digest.
func pullCheck(host, ref string) error {
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	return registrytest.PullVerify(r)
}

func (h *harness) mustPull(ref string) {
	h.t.Helper()
	if err := pullCheck(h.host, ref); err != nil {
		h.t.Fatalf("pull %s: %v", ref, err)
	}
}

func (h *harness) run(cfg gc.Config) *gc.Report {
	h.t.Helper()
	if err := cfg.Check(); err != nil {
		h.t.Fatal(err)
	}
	r, err := h.col.Run(context.Background(), cfg, false)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) fsck() *gc.FsckReport {
	h.t.Helper()
	r, err := gc.Fsck(context.Background(), h.graph, h.store, false)
	if err != nil {
		h.t.Fatal(err)
	}
	if !r.OK() {
		h.t.Fatalf("fsck: %d drift, %d broken: %q; packs: %q", r.Index.Drift, r.Index.Broken, r.Index.Problems, r.PackProblems)
	}
	return r
}
