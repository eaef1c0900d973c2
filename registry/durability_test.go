package registry

import (
	"os"
	"testing"
	"time"

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
