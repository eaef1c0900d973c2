package ops

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
)

// TestUsageRecomputedAfterDeletions: Run recomputes when the deletion
// counter moves, long before its interval.
func TestUsageRecomputedAfterDeletions(t *testing.T) {
	deletionPoll = 20 * time.Millisecond
	defer func() { deletionPoll = time.Minute }()
	g, err := refgraph.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var deleted atomic.Int64
	u := NewUsageTracker(g, UsageOptions{Interval: time.Hour, TempDir: t.TempDir(), Deletions: deleted.Load})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	runs := func() int64 {
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.runs
	}
	wait := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); runs() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d computations, want %d", runs(), n)
			}
		}
	}
	wait(1) // at start
	time.Sleep(100 * time.Millisecond)
	if n := runs(); n != 1 {
		t.Fatalf("%d computations without deletions within the interval, want 1", n)
	}
	deleted.Add(3)
	wait(2)
}
