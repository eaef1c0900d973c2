package crashtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The data dir on the test file systems, laid out as `chunkyard serve`
// lays out its --data.
const (
	dataDir    = "/data"
	storeDir   = dataDir + "/store"
	indexDir   = dataDir + "/index"
	uploadDir  = dataDir + "/uploads"
	pendingDir = dataDir + "/pending"
)

// clock is a test clock that moves one second each time it is read, so
// that every stamp differs and a zero grace period reclaims at the next
// GC run whatever became garbage before it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// world is one running registry: index, store, service, HTTP handler and
// collector on a file system (and a remote object store, if any).
type world struct {
	fs     vfs.FS
	remote *remote // nil: packs on the local file system
	clock  *clock
	log    *slog.Logger

	graph *refgraph.Graph
	store *chunkstore.Store
	svc   *registry.Service
	h     http.Handler
	col   *gc.Collector

	runMu   sync.Mutex
	stopRun func() // stops svc.Run, if running
}

// Small chunks and packs, so that a few KiB of layers make many chunks,
// seal many packs and give GC packs to repack.
const (
	testPackSize = 24 << 10
	testMinChunk = 512
	testMaxChunk = 8 << 10
	testAvgBits  = 11
)

// openWorld opens a registry on fsys, as `chunkyard serve` does: packs
// first (recovering staging), then the index, then the service.
func openWorld(fsys vfs.FS, rem *remote, clk *clock, log *slog.Logger) (*world, error) {
	ctx := context.Background()
	w := &world{fs: fsys, remote: rem, clock: clk, log: log}
	opts := chunkstore.Options{Dir: storeDir, FS: fsys, PackSize: testPackSize,
		MinChunk: testMinChunk, MaxChunk: testMaxChunk, AverageBits: testAvgBits, Logger: log}
	if rem != nil {
		opts.Backend = rem
	}
	var err error
	if w.store, err = chunkstore.Open(ctx, opts); err != nil {
		return nil, err
	}
	if w.graph, err = refgraph.Open(indexDir, log, refgraph.WithFS(fsys)); err != nil {
		w.store.Close()
		return nil, err
	}
	w.graph.SetClock(clk.now)
	w.svc, err = registry.New(w.graph, w.store, registry.Options{
		FS:        fsys,
		UploadDir: uploadDir,
		Logger:    log,
		Convert: registry.ConvertOptions{
			Workers:    1,
			PendingDir: pendingDir,
			MaxYield:   -1, // nothing to yield to: steps run one at a time
		},
	})
	if err != nil {
		w.closeData()
		return nil, err
	}
	w.h = ocihttp.NewHandler(w.svc, ocihttp.Options{Logger: log})
	w.col = gc.New(w.graph, w.store, log)
	w.col.OnBlobDeleted = w.svc.BlobDeleted
	w.col.Now = clk.now
	return w, nil
}

func (w *world) closeData() error {
	var errs []error
	if w.store != nil {
		errs = append(errs, w.store.Close())
	}
	if w.graph != nil {
		errs = append(errs, w.graph.Close())
	}
	w.store, w.graph = nil, nil
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// restart closes the world cleanly (the open pack is sealed and handed
// over) and opens it again on the same file system.
func (w *world) restart() error {
	if err := w.close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	nw, err := openWorld(w.fs, w.remote, w.clock, w.log)
	if err != nil {
		return fmt.Errorf("reopen: %w", err)
	}
	w.graph, w.store, w.svc, w.h, w.col = nw.graph, nw.store, nw.svc, nw.h, nw.col
	return nil
}

// close stops the service's background work and closes index and store.
func (w *world) close() error {
	w.stopService()
	return w.closeData()
}

// startService runs svc.Run (upload expiry and the layer converter) in the
// background until stopService.
func (w *world) startService() {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	if w.stopRun != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.svc.Run(ctx); close(done) }()
	w.stopRun = func() { cancel(); <-done }
}

func (w *world) stopService() {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	if w.stopRun != nil {
		w.stopRun()
		w.stopRun = nil
	}
}

// convertAll runs the converter until no blob waits for conversion, or
// until timeout. It reports whether the queue drained.
func (w *world) convertAll(timeout time.Duration) bool {
	w.startService()
	defer w.stopService()
	deadline := time.Now().Add(timeout)
	for w.graph.Stats().PendingConversions > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// do sends one request to the HTTP handler, in process.
func (w *world) do(method, target string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, req)
	return rec
}

// gcConfig reclaims as eagerly as it can: retention keeps the newest tag
// of gc/* repositories and deletes untagged manifests at once, the grace
// periods are zero, packs less than 90% live are repacked and small ones
// merged.
func gcConfig() gc.Config {
	c := gc.Config{
		GracePeriod:     0,
		PackGracePeriod: 0,
		RepackBelow:     0.9,
		SmallPack:       testPackSize / 2,
		Policies: []gc.Policy{{
			Repos:                   "gc/.*",
			KeepLast:                1,
			DeleteUntaggedOlderThan: gc.Duration(time.Nanosecond),
		}},
	}
	if err := c.Check(); err != nil {
		panic(err)
	}
	return c
}

// readBlob reads blob d of repo through the service (the pull path, which
// verifies the digest) and checks the bytes against d itself.
func (w *world) readBlob(repo string, d string) ([]byte, error) {
	dg, err := parseDigest(d)
	if err != nil {
		return nil, err
	}
	rc, size, err := w.svc.OpenBlob(context.Background(), repo, dg, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("blob %s of %s: read %d bytes of %d", d, repo, len(b), size)
	}
	if got := sha256Digest(b); got != d {
		return nil, fmt.Errorf("blob %s of %s: read bytes hash to %s", d, repo, got)
	}
	return b, nil
}
