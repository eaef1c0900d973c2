package gc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// TestReclaimWithin24Hours states the promise of the default
// configuration: with hourly runs, a blob nothing references since T is
// gone from the index by T+24h, and its bytes leave the backend one pack
// grace period later (serve deletes retired packs when they are due),
// leaving at most 5% of the stored bytes dead.
func TestReclaimWithin24Hours(t *testing.T) {
	h := newHarness(t, harnessOpts{packSize: 1 << 20})
	ctx := context.Background()
	cfg := gc.Default()
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	var doomed []digest.Digest
	for i := range 3 {
		ds := h.pushDirect(ctx, "app", fmt.Sprintf("old%d", i), randomBytes(uint64(10+i), 300<<10), randomBytes(uint64(20+i), 200<<10))
		doomed = append(doomed, ds...)
	}
	keep := h.pushDirect(ctx, "app", "keep", randomBytes(99, 400<<10))
	h.clock.advance(time.Hour)
	for i := range 3 { // at T, nothing references the old images any more
		if err := h.svc.DeleteManifest(ctx, "app", doomed[4*i+3].String()); err != nil {
			t.Fatal(err)
		}
	}
	T := h.clock.now()
	present := func() int {
		n := 0
		for _, d := range doomed {
			if _, err := h.graph.Blob(d); err == nil {
				n++
			} else if !errors.Is(err, refgraph.ErrNotFound) {
				t.Fatal(err)
			}
		}
		return n
	}
	var packsDue time.Time
	for hour := 1; hour <= 26; hour++ {
		next := T.Add(time.Duration(hour) * time.Hour)
		// Retired packs whose grace ends before the next hourly run are
		// deleted when due, as serve does.
		for !packsDue.IsZero() && packsDue.Before(next) {
			h.clock.advance(packsDue.Sub(h.clock.now()))
			r, err := h.col.DeletePacks(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			packsDue = r.NextPackDeletion
		}
		h.clock.advance(next.Sub(h.clock.now()))
		r := h.run(cfg)
		packsDue = r.NextPackDeletion
		switch n := present(); {
		case hour < 23 && n != len(doomed):
			t.Fatalf("T+%dh: %d of %d unreferenced blobs already gone: the grace period was cut short", hour, len(doomed)-n, len(doomed))
		case hour >= 24 && n != 0:
			t.Fatalf("T+%dh: %d unreferenced blobs still in the index (run: %+v)", hour, n, r)
		}
		if hour == 24 {
			t.Logf("T+24h: %d links reaped, %d blobs deleted, %d packs repacked, next pack deletion at T+%v",
				r.LinksReaped, r.BlobsDeleted, r.PacksRepacked, r.NextPackDeletion.Sub(T))
			if r.NextPackDeletion.IsZero() || r.NextPackDeletion.After(T.Add(24*time.Hour+cfg.PackGracePeriod.D())) {
				t.Fatalf("repacked packs due for deletion at %v, want by T+24h+%v", r.NextPackDeletion.Sub(T), cfg.PackGracePeriod.D())
			}
		}
		if hour == 25 {
			st := h.graph.Stats()
			dead := float64(st.PackBytes-st.LiveStoredBytes) / float64(st.PackBytes)
			t.Logf("T+25h: %d pack bytes, %d live: %.1f%% dead", st.PackBytes, st.LiveStoredBytes, 100*dead)
			if dead > 0.05 {
				h.graph.Packs(func(p refgraph.Pack) error {
					retired, _ := h.graph.Retired(p.Name)
					t.Logf("pack %s: %d bytes, %d live, retired %v", p.Name, p.TotalBytes, p.LiveBytes, retired)
					return nil
				})
				t.Logf("open packs: %v", h.store.OpenPacks())
				t.Fatalf("T+25h: %.1f%% of the stored bytes are dead", 100*dead)
			}
		}
	}
	h.mustPull("app:keep")
	for _, d := range keep {
		if _, err := h.graph.Blob(d); err != nil {
			t.Fatalf("a blob of the kept image: %v", err)
		}
	}
	h.fsck()
}

// A dry run says what nothing uses already but waits out the grace
// period, and from when to when it becomes reclaimable.
func TestDryRunReportsWhatWaits(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	ds := h.pushDirect(ctx, "app", "v1", randomBytes(1, 100<<10))
	if err := h.svc.DeleteManifest(ctx, "app", ds[len(ds)-1].String()); err != nil {
		t.Fatal(err)
	}
	T := h.clock.now()
	cfg := gc.Default()
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	h.clock.advance(time.Hour)
	r, err := h.col.Run(ctx, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	w := r.Waiting
	want := T.Add(cfg.GracePeriod.D())
	if w == nil || w.Links != 2 || w.Blobs != 1 || !w.First.Equal(want) || !w.Last.Equal(want) || w.BlobBytes == 0 {
		t.Fatalf("waiting = %+v; want 2 links (config, layer), 1 blob (the manifest), reclaimable at T+%v", w, cfg.GracePeriod.D())
	}
	h.clock.advance(cfg.GracePeriod.D())
	if r, err = h.col.Run(ctx, cfg, true); err != nil {
		t.Fatal(err)
	}
	if w := r.Waiting; w.Links != 0 || w.Blobs != 0 {
		t.Fatalf("after the grace period, waiting = %+v", w)
	}
}
