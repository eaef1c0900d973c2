package registry

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// lockedBuffer is a log sink safe for the converter's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), substr)
}

// A blob whose conversion keeps failing (its pending file is gone) is
// retried with backoff, not in a hot loop, and does not starve the blobs
// queued after it.
func TestConversionFailureBacksOff(t *testing.T) {
	logs := &lockedBuffer{}
	e := &env{t: t, dir: t.TempDir(), log: slog.New(slog.NewTextHandler(logs, nil))}
	// A retry a minute later: whatever the machine's load, a second
	// attempt within the test means no backoff.
	e.convert = ConvertOptions{Workers: 1, PendingDir: filepath.Join(e.dir, "pending"), RetryBase: time.Minute}
	e.open()
	t.Cleanup(e.close)

	var ds []digest.Digest
	for i := range 3 {
		ds = append(ds, e.pushBlob("app", gzipped(t, rootfsN(t, 2+i, time.Unix(int64(i), 0)), 6)))
	}
	slices.Sort(ds)
	broken := ds[0] // first in digest order: the old queue served it first, forever
	if err := os.Remove(e.svc.pendingPath(broken)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		converted := 0
		for _, d := range ds[1:] {
			if b, err := e.graph.Blob(d); err == nil && b.Kind == refgraph.KindLayer {
				converted++
			}
		}
		if converted == len(ds)-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the blobs queued after a failing one were not converted in 20 s (%d of %d)", converted, len(ds)-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // time for a hot loop to show
	cancel()
	<-done
	if n := logs.count("converting blob failed"); n > 1 {
		t.Errorf("%d log lines about the failing blob in about a second: retried in a hot loop\n%s", n, logs.b.String())
	}
}

// After MaxAttempts the conversion is abandoned: the blob leaves the queue,
// is listed as failed with its cause, and the converter goes quiet.
func TestConversionAbandonedAfterMaxAttempts(t *testing.T) {
	logs := &lockedBuffer{}
	e := &env{t: t, dir: t.TempDir(), log: slog.New(slog.NewTextHandler(logs, nil))}
	e.convert = ConvertOptions{Workers: 1, PendingDir: filepath.Join(e.dir, "pending"),
		RetryBase: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, MaxAttempts: 3}
	e.open()
	t.Cleanup(e.close)
	d := e.pushBlob("app", gzipped(t, rootfsN(t, 2, time.Unix(0, 0)), 6))
	if err := os.Remove(e.svc.pendingPath(d)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.graph.Stats().FailedConversions == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not abandoned after 10 s; logs:\n%s", logs.b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	if st := e.graph.Stats(); st.PendingConversions != 0 || st.FailedConversions != 1 {
		t.Fatalf("stats = %+v", st)
	}
	var failed []refgraph.FailedConversion
	e.graph.FailedConversions(func(f refgraph.FailedConversion) error { failed = append(failed, f); return nil })
	if len(failed) != 1 || failed[0].Digest != d || failed[0].Attempts != 3 || !strings.Contains(failed[0].LastError, "no file") {
		t.Fatalf("failed = %+v", failed)
	}
	if n := logs.count("will retry"); n != 2 {
		t.Errorf("%d retry lines, want 2", n)
	}
	if n := logs.count("giving up converting blob; its pending file is missing"); n != 1 {
		t.Errorf("%d give-up lines naming the missing file, want 1:\n%s", n, logs.b.String())
	}
}
