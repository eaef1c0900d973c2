package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// Store is what GC needs of the chunk store.
type Store interface {
	ListPacks(ctx context.Context, fn func(name string, size int64) error) error
	ReadTrailer(ctx context.Context, pack string) ([]chunkstore.PackEntry, error)
	Rewrite(ctx context.Context, chunks []chunkstore.ChunkRead) ([]chunkstore.Chunk, error)
	DeletePack(ctx context.Context, name string) error
	// OpenPacks lists the packs still being written or waiting for
	// upload: not in the backend yet, and not to be repacked.
	OpenPacks() []string
	// SealOpen seals the pack receiving appends if it is named name.
	SealOpen(ctx context.Context, name string) (bool, error)
	// PackSize is the size at which packs are sealed.
	PackSize() int64
}

// Collector runs garbage collection over one index and store; one run at
// a time.
type Collector struct {
	graph *refgraph.Graph
	store Store
	log   *slog.Logger
	// OnBlobDeleted, if set, is called after a blob's record is deleted,
	// to remove what lives outside the index (a pending file, cached
	// encodings).
	OnBlobDeleted func(refgraph.Blob)
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time

	mu   sync.Mutex // held by a run
	last *Report
	runs runCounters
}

// RunStats counts the collector's runs since New (dry runs not
// counted); packs deleted count DeletePacks' too.
type RunStats struct {
	Runs             int64
	Failed           int64 // ended in an error (not cancelled)
	BlobsDeleted     int64
	ManifestsDeleted int64
	PacksDeleted     int64
	// ReclaimedBytes is the stored bytes of the packs deleted.
	ReclaimedBytes int64
	Duration       time.Duration // all runs together
}

type runCounters struct {
	runs, failed, blobs, manifests, packs, bytes, nanos atomic.Int64
}

// Stats returns the run counters.
func (c *Collector) Stats() RunStats {
	r := &c.runs
	return RunStats{Runs: r.runs.Load(), Failed: r.failed.Load(), BlobsDeleted: r.blobs.Load(),
		ManifestsDeleted: r.manifests.Load(), PacksDeleted: r.packs.Load(), ReclaimedBytes: r.bytes.Load(),
		Duration: time.Duration(r.nanos.Load())}
}

func (rc *runCounters) add(ctx context.Context, r *Report, err error) {
	rc.runs.Add(1)
	if err != nil && ctx.Err() == nil {
		rc.failed.Add(1) // not a run cut short by shutdown
	}
	rc.blobs.Add(int64(r.BlobsDeleted))
	rc.manifests.Add(int64(r.ManifestsDeleted))
	rc.packs.Add(int64(r.PacksDeleted))
	rc.bytes.Add(r.PackBytesDeleted)
	rc.nanos.Add(int64(r.Duration))
}

// New returns a Collector.
func New(g *refgraph.Graph, s Store, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.Default()
	}
	return &Collector{graph: g, store: s, log: log.With("component", "gc")}
}

// Report tells what a run did (or, dry, would do).
type Report struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	DryRun   bool          `json:"dry_run"`

	TagsDeleted      int        `json:"tags_deleted"`
	ManifestsDeleted int        `json:"manifests_deleted"`
	Deletions        []Deletion `json:"deletions,omitempty"` // tags and manifests, at most MaxListed
	LinksReaped      int        `json:"links_reaped"`
	BlobsDeleted     int        `json:"blobs_deleted"`
	BlobBytes        int64      `json:"blob_bytes"` // logical bytes of the blobs deleted
	// Dry runs: stored bytes of the chunks that the blobs retention
	// frees would release, once the grace period is over.
	ReclaimableBytes int64 `json:"reclaimable_bytes,omitempty"`
	// Dry runs: what nothing uses already but waits out the grace period
	// (a real run now would not reclaim it yet).
	Waiting *Waiting `json:"waiting,omitempty"`

	PacksRepacked     int   `json:"packs_repacked"`
	PacksInUse        int   `json:"packs_in_use"`        // repacks given up: a chunk was taken up again meanwhile (next run)
	RepackCopiedBytes int64 `json:"repack_copied_bytes"` // live bytes copied to new packs
	DeadChunks        int   `json:"dead_chunks_dropped"`
	PacksDeleted      int   `json:"packs_deleted"`
	PackBytesDeleted  int64 `json:"pack_bytes_deleted"` // stored bytes of the packs deleted
	UnknownPacks      int   `json:"unknown_packs_deleted"`

	StoredBefore int64 `json:"stored_bytes_before"` // pack bytes the index counts
	StoredAfter  int64 `json:"stored_bytes_after"`
	// NextPackDeletion is when the next retired pack may be deleted (its
	// pack grace period over); zero if none waits.
	NextPackDeletion time.Time `json:"next_pack_deletion,omitzero"`
}

// Waiting counts blob links no manifest uses and blobs no link
// references whose grace period is not over yet.
type Waiting struct {
	Links     int       `json:"links"`
	Blobs     int       `json:"blobs"`
	BlobBytes int64     `json:"blob_bytes"` // logical bytes of those blobs
	First     time.Time `json:"first_reclaimable,omitzero"`
	Last      time.Time `json:"last_reclaimable,omitzero"`
}

func (w *Waiting) add(at time.Time) {
	if w.First.IsZero() || at.Before(w.First) {
		w.First = at
	}
	if at.After(w.Last) {
		w.Last = at
	}
}

// waiting finds what waits out the grace period at now.
func (c *Collector) waiting(ctx context.Context, cfg Config, now time.Time) (*Waiting, error) {
	w := &Waiting{}
	grace := cfg.GracePeriod.D()
	err := c.graph.UnusedLinksSince(func(_ string, _ digest.Digest, since time.Time) error {
		if at := since.Add(grace); at.After(now) {
			w.Links++
			w.add(at)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	err = c.graph.UnreferencedBlobsSince(func(d digest.Digest, since time.Time) error {
		if at := since.Add(grace); at.After(now) {
			w.Blobs++
			w.add(at)
			if b, err := c.graph.Blob(d); err == nil {
				w.BlobBytes += b.Size
			}
		}
		return ctx.Err()
	})
	return w, err
}

// MaxListed bounds Report.Deletions.
const MaxListed = 10000

func (r *Report) deleted(d Deletion) {
	if len(r.Deletions) < MaxListed {
		r.Deletions = append(r.Deletions, d)
	}
}

// Last returns the last run's report, nil before the first.
func (c *Collector) Last() *Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Run runs garbage collection once with cfg (which must have passed
// Check): retention, links, blobs, repack, pack deletion. A dry run
// changes nothing and reports what retention would delete and reclaim.
// Run returns early with ctx's error when ctx ends; what it did so far
// stays done and consistent.
func (c *Collector) Run(ctx context.Context, cfg Config, dryRun bool) (*Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now, start := c.now(), time.Now()
	r := &Report{Started: now, DryRun: dryRun, StoredBefore: c.graph.Stats().PackBytes}
	err := c.run(ctx, cfg, dryRun, now, r)
	r.Duration = time.Since(start)
	r.StoredAfter = c.graph.Stats().PackBytes
	attrs := []any{"dry_run", dryRun, "duration", r.Duration.Round(time.Millisecond),
		"tags_deleted", r.TagsDeleted, "manifests_deleted", r.ManifestsDeleted,
		"links_reaped", r.LinksReaped, "blobs_deleted", r.BlobsDeleted, "blob_bytes", r.BlobBytes,
		"packs_repacked", r.PacksRepacked, "packs_in_use", r.PacksInUse, "repack_copied_bytes", r.RepackCopiedBytes,
		"packs_deleted", r.PacksDeleted, "pack_bytes_deleted", r.PackBytesDeleted,
		"stored_before", r.StoredBefore, "stored_after", r.StoredAfter}
	if dryRun {
		attrs = append(attrs, "reclaimable_bytes", r.ReclaimableBytes)
	}
	if err != nil {
		c.log.Error("gc run failed", append(attrs, "err", err)...)
	} else {
		c.log.Info("gc run", attrs...)
	}
	if !dryRun {
		c.last = r
		c.runs.add(ctx, r, err)
	}
	return r, err
}

func (c *Collector) run(ctx context.Context, cfg Config, dryRun bool, now time.Time, r *Report) error {
	if err := c.retention(ctx, cfg, dryRun, now, r); err != nil {
		return fmt.Errorf("gc: retention: %w", err)
	}
	if dryRun {
		var err error
		r.Waiting, err = c.waiting(ctx, cfg, now)
		return err
	}
	cutoff := now.Add(-cfg.GracePeriod.D())
	if err := c.reapLinks(ctx, cutoff, r); err != nil {
		return fmt.Errorf("gc: links: %w", err)
	}
	if err := c.deleteBlobs(ctx, cutoff, r); err != nil {
		return fmt.Errorf("gc: blobs: %w", err)
	}
	if err := c.repack(ctx, cfg, r); err != nil {
		return fmt.Errorf("gc: repack: %w", err)
	}
	if err := c.deletePacks(ctx, now.Add(-cfg.PackGracePeriod.D()), cutoff, r); err != nil {
		return fmt.Errorf("gc: packs: %w", err)
	}
	return c.nextPackDeletion(cfg, r)
}

func (c *Collector) nextPackDeletion(cfg Config, r *Report) error {
	since, ok, err := c.graph.OldestRetired()
	if ok {
		r.NextPackDeletion = since.Add(cfg.PackGracePeriod.D())
	}
	return err
}

// DeletePacks runs the last step of a run alone: it deletes the retired
// packs whose pack grace period is over (serve runs it when one is due,
// between scheduled runs, so that repacked bytes leave the backend one
// pack grace period after the repack).
func (c *Collector) DeletePacks(ctx context.Context, cfg Config) (*Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	r := &Report{Started: now, StoredBefore: c.graph.Stats().PackBytes}
	err := c.deletePacks(ctx, now.Add(-cfg.PackGracePeriod.D()), now.Add(-cfg.GracePeriod.D()), r)
	if err == nil {
		err = c.nextPackDeletion(cfg, r)
	}
	r.StoredAfter = c.graph.Stats().PackBytes
	c.runs.packs.Add(int64(r.PacksDeleted))
	c.runs.bytes.Add(r.PackBytesDeleted)
	if err != nil {
		c.log.Error("gc pack deletion failed", "err", err)
	} else if r.PacksDeleted > 0 {
		c.log.Info("gc deleted retired packs", "packs_deleted", r.PacksDeleted, "pack_bytes_deleted", r.PackBytesDeleted)
	}
	return r, err
}

// retention applies the policies repository by repository.
func (c *Collector) retention(ctx context.Context, cfg Config, dryRun bool, now time.Time, r *Report) error {
	if len(cfg.Policies) == 0 {
		return nil
	}
	sim := newSimulation(c.graph)
	last := ""
	for {
		repos, more, err := c.graph.Repos(last, 1000)
		if err != nil {
			return err
		}
		for _, repo := range repos {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := cfg.policyFor(repo)
			if p == nil {
				continue
			}
			plan, err := planRepo(c.graph, repo, p, now)
			if err != nil {
				return fmt.Errorf("%s: %w", repo, err)
			}
			if dryRun {
				r.TagsDeleted += len(plan.tags)
				r.ManifestsDeleted += len(plan.manifests)
				for _, d := range append(plan.tags, plan.manifests...) {
					r.deleted(d)
				}
				if err := sim.add(repo, plan); err != nil {
					return err
				}
				continue
			}
			if err := c.apply(repo, plan, r); err != nil {
				return fmt.Errorf("%s: %w", repo, err)
			}
		}
		if !more || len(repos) == 0 {
			break
		}
		last = repos[len(repos)-1]
	}
	if dryRun {
		var err error
		r.BlobsDeleted, r.BlobBytes, r.ReclaimableBytes, err = sim.result()
		return err
	}
	return nil
}

// apply carries out a plan; each deletion re-checks its condition in its
// batch (a tag moved or a manifest tagged again since is left alone).
func (c *Collector) apply(repo string, plan repoPlan, r *Report) error {
	tags := make([]refgraph.TagRecord, len(plan.tags))
	for i, d := range plan.tags {
		tags[i] = refgraph.TagRecord{Name: d.Tag, Digest: d.Digest}
	}
	done, err := c.graph.DeleteTagsIf(repo, tags)
	for i, ok := range done {
		if ok {
			r.TagsDeleted++
			r.deleted(plan.tags[i])
		}
	}
	if err != nil {
		return err
	}
	ds := make([]digest.Digest, len(plan.manifests))
	for i, d := range plan.manifests {
		ds[i] = d.Digest
	}
	done, err = c.graph.DeleteUntaggedMany(repo, ds)
	for i, ok := range done {
		if ok {
			r.ManifestsDeleted++
			r.deleted(plan.manifests[i])
		}
	}
	return err
}

// reapLinks removes blob links unused since before cutoff.
func (c *Collector) reapLinks(ctx context.Context, cutoff time.Time, r *Report) error {
	var links []refgraph.RepoDigest
	if err := c.graph.UnusedLinks(cutoff, func(repo string, d digest.Digest) error {
		links = append(links, refgraph.RepoDigest{Repo: repo, Digest: d})
		return ctx.Err()
	}); err != nil {
		return err
	}
	n, err := c.graph.ReapLinks(links, cutoff)
	r.LinksReaped += n
	if err != nil {
		return err
	}
	return ctx.Err()
}

// deleteBlobs removes blobs unreferenced since before cutoff.
func (c *Collector) deleteBlobs(ctx context.Context, cutoff time.Time, r *Report) error {
	var ds []digest.Digest
	if err := c.graph.UnreferencedBlobs(cutoff, func(d digest.Digest) error {
		ds = append(ds, d)
		return ctx.Err()
	}); err != nil {
		return err
	}
	_, err := c.graph.DeleteBlobs(ds, cutoff, func(b refgraph.Blob) {
		r.BlobsDeleted++
		r.BlobBytes += b.Size
		if c.OnBlobDeleted != nil {
			c.OnBlobDeleted(b)
		}
	})
	if err != nil {
		return err
	}
	return ctx.Err()
}

// repack rewrites sealed packs whose live fraction is below the threshold,
// and merges small ones.
func (c *Collector) repack(ctx context.Context, cfg Config, r *Report) error {
	// An open pack with dead chunks is sealed, so that it can be repacked
	// (this run if the backend has it at once, else the next).
	for _, name := range c.store.OpenPacks() {
		p, err := c.graph.Pack(name)
		if errors.Is(err, refgraph.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if p.TotalBytes > 0 && float64(p.LiveBytes) < cfg.RepackBelow*float64(p.TotalBytes) {
			if _, err := c.store.SealOpen(ctx, name); err != nil {
				return err
			}
		}
	}
	sealed := map[string]bool{}
	if err := c.store.ListPacks(ctx, func(name string, size int64) error {
		sealed[name] = true
		return nil
	}); err != nil {
		return err
	}
	// A pack sealed full is never small, whatever the configuration says:
	// merging those would rewrite them run after run.
	smallBelow := min(cfg.SmallPack, c.store.PackSize()/2)
	var sparse, small []refgraph.Pack
	if err := c.graph.Packs(func(p refgraph.Pack) error {
		if !sealed[p.Name] {
			return nil // open, staged, or deleted already
		}
		if retired, err := c.graph.Retired(p.Name); err != nil || retired {
			return err
		}
		switch {
		case p.TotalBytes > 0 && float64(p.LiveBytes) < cfg.RepackBelow*float64(p.TotalBytes):
			sparse = append(sparse, p)
		case p.TotalBytes < smallBelow:
			small = append(small, p)
		}
		return nil
	}); err != nil {
		return err
	}
	todo := sparse
	if len(small) >= 2 {
		todo = append(todo, small...)
	}
	// The emptiest first: they free the most for the least copying.
	slices.SortFunc(todo, compareFraction)
	var copied int64
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if cfg.MaxRepackBytes > 0 && copied+p.LiveBytes > cfg.MaxRepackBytes && copied > 0 {
			break
		}
		n, dead, err := c.repackOne(ctx, p.Name)
		if errors.Is(err, refgraph.ErrPackInUse) {
			c.log.Info("pack taken up again while repacking; retrying next run", "pack", p.Name, "err", err)
			r.PacksInUse++
			continue
		}
		if err != nil {
			return fmt.Errorf("pack %s: %w", p.Name, err)
		}
		copied += n
		r.PacksRepacked++
		r.RepackCopiedBytes += n
		r.DeadChunks += dead
	}
	return nil
}

func compareFraction(a, b refgraph.Pack) int {
	fa := float64(a.LiveBytes) / float64(max(a.TotalBytes, 1))
	fb := float64(b.LiveBytes) / float64(max(b.TotalBytes, 1))
	switch {
	case fa < fb:
		return -1
	case fa > fb:
		return 1
	}
	return 0
}

// repackOne copies the live chunks of pack into new packs and retires it.
func (c *Collector) repackOne(ctx context.Context, pack string) (copied int64, dead int, err error) {
	entries, err := c.store.ReadTrailer(ctx, pack)
	if err != nil {
		return 0, 0, err
	}
	ids := make([]chunkstore.ID, len(entries))
	var live []chunkstore.ChunkRead
	for i, e := range entries {
		ids[i] = e.ID
		ch, err := c.graph.Chunk(e.ID)
		if errors.Is(err, refgraph.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		if ch.Refs > 0 && ch.Loc == e.Loc {
			live = append(live, chunkstore.ChunkRead{ID: e.ID, Loc: e.Loc})
			copied += int64(e.Loc.StoredLen)
		}
	}
	var moved []chunkstore.Chunk
	if len(live) > 0 {
		if moved, err = c.store.Rewrite(ctx, live); err != nil {
			return 0, 0, err
		}
	}
	dead, err = c.graph.MovePack(pack, ids, moved)
	return copied, dead, err
}

// tombstoneTTL is how long after its deletion a pack's tombstone refuses
// late commits into it (beyond the grace period): far longer than any
// write waits for its commit.
const tombstoneTTL = 30 * 24 * time.Hour

// deletePacks deletes retired packs past the pack grace period, and
// retires packs the index has not known for the grace period.
func (c *Collector) deletePacks(ctx context.Context, packCutoff, unknownCutoff time.Time, r *Report) error {
	var retired []string
	if err := c.graph.RetiredPacks(packCutoff, func(p string) error {
		retired = append(retired, p)
		return ctx.Err()
	}); err != nil {
		return err
	}
	for _, name := range retired {
		p, err := c.graph.Pack(name) // none for a pack the index never knew
		if err != nil && !errors.Is(err, refgraph.ErrNotFound) {
			return err
		}
		if err := c.store.DeletePack(ctx, name); err != nil {
			return err
		}
		if err := c.graph.ForgetPack(name); err != nil {
			return err
		}
		r.PacksDeleted++
		r.PackBytesDeleted += p.TotalBytes
	}
	// Packs unknown to the index for the grace period are retired like
	// repacked ones: deleted by a later run, after the pack grace period.
	var unknown []string
	if err := c.store.ListPacks(ctx, func(name string, size int64) error {
		first, known, err := c.graph.SeenUnknownPack(name)
		if err == nil && !known && first.Before(unknownCutoff) {
			unknown = append(unknown, name)
		}
		return err
	}); err != nil {
		return err
	}
	for _, name := range unknown {
		ok, err := c.graph.RetireUnknownPack(name)
		if err != nil {
			return err
		}
		if ok {
			r.UnknownPacks++
		}
	}
	_, err := c.graph.ExpireTombstones(unknownCutoff.Add(-tombstoneTTL))
	return err
}
