package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/opencontainers/go-digest"
)

// TestSweepKeepsAPendingFileBeingCommitted: the sweep of stale pending
// files runs when the converter starts, while pushes are served. It must
// not take the file of a push that has linked it into the pending dir but
// not indexed it yet for stale: that push is then acknowledged with no
// copy of its layer left. Found by the power-loss test (crashtest, chain
// seed 200, a push while the converter started).
func TestSweepKeepsAPendingFileBeingCommitted(t *testing.T) {
	e := newConvertEnv(t, ConvertOptions{})
	data := []byte("\x1f\x8b a layer, as far as the sweep cares")
	d := digest.FromBytes(data)
	path := e.svc.pendingPath(d)

	// commitPending, up to its index batch: the file is linked, the lock
	// held.
	e.svc.pendingMu.Lock()
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.svc.sweepPending() }()
	time.Sleep(50 * time.Millisecond) // the sweep reaches the file
	if _, err := e.graph.CommitPending("app", d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	e.svc.pendingMu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the pending file of a blob being committed was swept: %v", err)
	}
	if got := e.readBlob("app", d); string(got) != string(data) {
		t.Fatalf("read %q", got)
	}
}

// memService opens store, index and service on fsys as chunkyard serve
// lays them out under /data, converting layers.
func memService(t *testing.T, fsys vfs.FS) (svc *Service, closeAll func()) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := chunkstore.Open(context.Background(), chunkstore.Options{Dir: "/data/store", FS: fsys, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	graph, err := refgraph.Open("/data/index", log, refgraph.WithFS(fsys))
	if err != nil {
		t.Fatal(err)
	}
	svc, err = New(graph, store, Options{FS: fsys, UploadDir: "/data/uploads", Logger: log,
		Convert: ConvertOptions{Workers: 1, PendingDir: "/data/pending"}})
	if err != nil {
		t.Fatal(err)
	}
	return svc, func() { store.Close(); graph.Close() }
}

// TestFreshPendingDirSurvivesPowerLoss: the pending dir holds
// acknowledged layers, so its creation must be durable (its parent
// fsynced). It was created with a plain MkdirAll: a power loss after the
// first layer pushed to a new data dir could take the directory and the
// layer with it. Found by the power-loss test (crashtest, chain seed 700,
// before fsutil.MkdirAll).
func TestFreshPendingDirSurvivesPowerLoss(t *testing.T) {
	mem := vfs.NewCrashableMem()
	svc, closeAll := memService(t, mem)
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	zw.Write(bytes.Repeat([]byte("a layer "), 1000))
	zw.Close()
	d := digest.FromBytes(layer.Bytes())
	ctx := context.Background()
	id, err := svc.StartUpload(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.FinishUpload(ctx, "app", id, d, -1, bytes.NewReader(layer.Bytes())); err != nil {
		t.Fatal(err)
	}
	if b, err := svc.graph.Blob(d); err != nil || b.Kind != refgraph.KindPending {
		t.Fatalf("blob %+v, %v: want it pending conversion", b, err)
	}
	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // acknowledged: durable
	closeAll()

	svc, closeAll = memService(t, crashed)
	defer closeAll()
	rc, _, err := svc.OpenBlob(ctx, "app", d, 0, -1)
	if err != nil {
		t.Fatalf("acknowledged layer after a power loss: %v", err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, layer.Bytes()) {
		t.Fatalf("acknowledged layer after a power loss: %d bytes, %v", len(got), err)
	}
}

// TestExpireRemovesHalfSessions: a crash can leave a session's sidecar
// without its spool file (it struck between the two creations, or the
// removal of only one became durable), or the other way round; expiry
// removes those halves too instead of keeping them forever.
func TestExpireRemovesHalfSessions(t *testing.T) {
	e := newEnv(t)
	dir := e.svc.uploads.dir
	past := time.Now().Add(-48 * time.Hour)
	sidecarOnly, spoolOnly := newID(), newID()
	for _, name := range []string{sidecarOnly + ".json", spoolOnly} {
		path := dir + "/" + name
		if err := os.WriteFile(path, []byte(`{"repo":"app"}`), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, past, past); err != nil {
			t.Fatal(err)
		}
	}
	e.svc.uploads.expire(time.Now())
	for _, name := range []string{sidecarOnly + ".json", spoolOnly} {
		if _, err := os.Stat(dir + "/" + name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after expiry: %v", name, err)
		}
	}
}
