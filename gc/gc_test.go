package gc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func testConfig(policies ...gc.Policy) gc.Config {
	c := gc.Default()
	c.GracePeriod = gc.Duration(time.Hour)
	c.PackGracePeriod = gc.Duration(time.Minute)
	c.RepackBelow = 0.9
	c.Policies = policies
	return c
}

// TestRetentionReclaimsAndRepacks: keep_last 2 of 6 rebuilt images with
// untagged cleanup; over successive runs (the grace periods passing on a
// test clock) the tags, manifests, links, blobs and pack bytes of the
// four old images go, the two kept pull byte for byte, and fsck is clean
// at every step.
func TestRetentionReclaimsAndRepacks(t *testing.T) {
	retentionReclaimsAndRepacks(t, newHarness(t, harnessOpts{}))
}

// TestRetentionReclaimsAndRepacksS3: the same with packs on S3 (a real
// versitygw): repacking reads live chunks with ranged GETs and deletes
// packs from the bucket.
func TestRetentionReclaimsAndRepacksS3(t *testing.T) {
	retentionReclaimsAndRepacks(t, newHarness(t, harnessOpts{s3: true}))
}

func retentionReclaimsAndRepacks(t *testing.T, h *harness) {
	base := blobLayer(randomBytes(1, 600<<10))
	for i := range 6 {
		h.push(fmt.Sprintf("ci/app:r%d", i), image(t, base, blobLayer(randomBytes(uint64(100+i), 500<<10))))
		h.clock.advance(time.Minute)
	}
	h.push("other/keep:v1", image(t, blobLayer(randomBytes(7, 300<<10)))) // no policy matches
	before := h.graph.Stats()
	cfg := testConfig(gc.Policy{Repos: "ci/.*", KeepLast: 2, DeleteUntaggedOlderThan: gc.Duration(time.Nanosecond)})

	r := h.run(cfg)
	if r.TagsDeleted != 4 || r.ManifestsDeleted != 4 || r.LinksReaped != 0 || r.BlobsDeleted != 0 {
		t.Fatalf("first run: %+v", r)
	}
	h.fsck()
	for i := range 4 {
		if _, err := remote.Image(h.ref(fmt.Sprintf("ci/app:r%d", i))); !isNotFound(err) {
			t.Fatalf("r%d still pulls: %v", i, err)
		}
	}
	// Within the grace period nothing more goes.
	h.clock.advance(30 * time.Minute)
	if r := h.run(cfg); r.LinksReaped != 0 || r.BlobsDeleted != 4 && r.BlobsDeleted != 0 {
		t.Fatalf("run within grace: %+v", r)
	}
	// The old manifests' blobs (4, unreferenced since the first run) and,
	// one grace period later, the unused links' blobs (4 layers; the
	// config blobs may be shared).
	h.clock.advance(time.Hour)
	r = h.run(cfg)
	if r.LinksReaped < 4 || r.BlobsDeleted < 4 {
		t.Fatalf("run after grace: %+v", r)
	}
	h.fsck()
	h.clock.advance(2 * time.Hour)
	r = h.run(cfg)
	h.fsck()
	h.clock.advance(2 * time.Hour)
	r = h.run(cfg) // deletes the packs retired by the run before
	h.fsck()
	after := h.graph.Stats()
	t.Logf("stored %d -> %d bytes, live %d -> %d; last run %+v", before.PackBytes, after.PackBytes,
		before.LiveStoredBytes, after.LiveStoredBytes, r)
	for _, ref := range []string{"ci/app:r4", "ci/app:r5", "other/keep:v1"} {
		h.mustPull(ref)
	}
	// What is left is what the three images need, within the threshold.
	if after.LiveStoredBytes >= before.LiveStoredBytes || float64(after.PackBytes) > float64(after.LiveStoredBytes)/cfg.RepackBelow+float64(cfg.SmallPack) {
		t.Fatalf("stored %d bytes for %d live", after.PackBytes, after.LiveStoredBytes)
	}
	if after.PackBytes >= before.PackBytes {
		t.Fatalf("nothing reclaimed: %d -> %d", before.PackBytes, after.PackBytes)
	}
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == 404
}

// TestDryRun reports what a run would delete and reclaim, and changes
// nothing.
func TestDryRun(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for i := range 4 {
		h.push(fmt.Sprintf("ci/app:r%d", i), image(t, blobLayer(randomBytes(uint64(i), 400<<10))))
		h.clock.advance(time.Minute)
	}
	before := h.graph.Stats()
	cfg := testConfig(gc.Policy{Repos: "ci/.*", KeepLast: 1, DeleteUntaggedOlderThan: gc.Duration(time.Nanosecond)})
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	r, err := h.col.Run(context.Background(), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.TagsDeleted != 3 || r.ManifestsDeleted != 3 || len(r.Deletions) != 6 || r.BlobsDeleted < 6 || r.ReclaimableBytes < 3*400<<10 {
		t.Fatalf("dry run: %+v", r)
	}
	if after := h.graph.Stats(); after != before {
		t.Fatalf("a dry run changed the index: %+v -> %+v", before, after)
	}
	for i := range 4 {
		h.mustPull(fmt.Sprintf("ci/app:r%d", i))
	}
}

// TestPolicies: keep_tags and keep_pulled_within protect tags,
// delete_tags_older_than deletes by age, an index keeps the manifests it
// names, and a referrer stays while its subject does.
func TestPolicies(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	img := func(i int) string {
		return fmt.Sprintf("%d", i)
	}
	for i := range 5 {
		h.push("app/x:"+[]string{"v1.0", "old", "pulled", "new", "main"}[i], image(t, blobLayer(randomBytes(uint64(i), 100<<10))))
		_ = img
	}
	h.mustPull("app/x:pulled")
	h.svc.FlushPulls()
	h.clock.advance(10 * 24 * time.Hour)
	h.push("app/x:fresh", image(t, blobLayer(randomBytes(9, 100<<10))))
	cfg := testConfig(gc.Policy{Repos: "app/.*", KeepTags: "v[0-9.]+|main",
		DeleteTagsOlderThan: gc.Duration(7 * 24 * time.Hour), KeepPulledWithin: gc.Duration(30 * 24 * time.Hour)})
	r := h.run(cfg)
	var deleted []string
	for _, d := range r.Deletions {
		deleted = append(deleted, d.Tag)
	}
	if fmt.Sprint(deleted) != "[new old]" && fmt.Sprint(deleted) != "[old new]" {
		t.Fatalf("deleted %v, want old and new (%+v)", deleted, r)
	}
	for _, tag := range []string{"v1.0", "pulled", "main", "fresh"} {
		h.mustPull("app/x:" + tag)
	}
}

// TestIndexAndReferrers: an untagged-manifest rule keeps the manifests a
// tagged index names and the referrers of a kept manifest; when the index
// goes, its manifests follow in the same run.
func TestIndexAndReferrers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a := image(t, blobLayer(randomBytes(1, 50<<10)))
	b := image(t, blobLayer(randomBytes(2, 50<<10)))
	idx := indexOf(t, a, b)
	if err := remote.WriteIndex(h.ref("multi/app:v1"), idx); err != nil {
		t.Fatal(err)
	}
	h.push("multi/app:solo", image(t, blobLayer(randomBytes(3, 50<<10))))
	sig := referrer(t, h, "multi/app:solo")
	h.clock.advance(48 * time.Hour)
	cfg := testConfig(gc.Policy{Repos: "multi/.*", DeleteUntaggedOlderThan: gc.Duration(24 * time.Hour)})
	if r := h.run(cfg); r.ManifestsDeleted != 0 {
		t.Fatalf("deleted %+v", r.Deletions)
	}
	h.fsck()
	// Untag both: the index, its two manifests, the solo image and its
	// referrer all go.
	for _, tag := range []string{"v1", "solo"} {
		if err := remote.Delete(h.ref("multi/app:" + tag)); err != nil {
			t.Fatal(err)
		}
	}
	r := h.run(cfg)
	if r.ManifestsDeleted != 5 {
		t.Fatalf("deleted %d manifests: %+v", r.ManifestsDeleted, r.Deletions)
	}
	if _, err := h.graph.Manifest("multi/app", refgraphDigest(sig)); !errors.Is(err, refgraph.ErrNotFound) {
		t.Fatalf("referrer still there: %v", err)
	}
	h.fsck()
}
