package gc_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ops/opstest"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
)

// stressDuration is how long TestGCUnderLoad runs its clients:
// CHUNKYARD_GC_STRESS (a Go duration; scripts/test sets minutes), else a
// few seconds.
func stressDuration(t *testing.T) time.Duration {
	if v := os.Getenv("CHUNKYARD_GC_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CHUNKYARD_GC_STRESS: %v", err)
		}
		return d
	}
	if raceEnabled {
		return 25 * time.Second // the race detector slows every client down
	}
	return 8 * time.Second
}

// TestGCUnderLoad: GC with aggressive retention (keep 2 tags, delete
// untagged at once), short grace periods and a high repack threshold runs
// in a loop while 20 clients push near-duplicate images (gzip layers the
// converter splits) and 20 pull and verify whatever tags exist. Every pull
// of a manifest that exists must be byte-exact. Afterwards fsck is clean
// and what is stored is what the surviving images need, within the
// repack threshold.
func TestGCUnderLoad(t *testing.T) {
	const pushers, pullers, repos = 20, 20, 5
	h := newHarness(t, harnessOpts{convert: true, running: true, packSize: 1 << 20})
	cfg := testConfig(gc.Policy{Repos: "ci/.*", KeepLast: 2, DeleteUntaggedOlderThan: gc.Duration(time.Nanosecond)})
	cfg.GracePeriod = gc.Duration(5 * time.Second) // pushes upload layers before their manifest
	cfg.PackGracePeriod = gc.Duration(2 * time.Second)
	cfg.RepackBelow = gc.DefaultRepackBelow
	cfg.SmallPack = 256 << 10
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	var (
		pushes, pulls, gone, gcRuns, gcDeleted atomic.Int64
		failMu                                 sync.Mutex
		failures                               []string
		wg                                     sync.WaitGroup
	)
	// The clients run for the stress duration, and on a loaded machine
	// longer, until enough has happened to mean anything (at most 5
	// minutes more).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	duration := stressDuration(t)
	go func() {
		start := time.Now()
		enough := func() bool { return pushes.Load() >= 20 && pulls.Load() > 0 && gcDeleted.Load() > 0 }
		for time.Since(start) < duration || (!enough() && time.Since(start) < duration+5*time.Minute) {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
	}()
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				repo := fmt.Sprintf("ci/app%d", p%repos)
				// A rebuild: the shared base files with a new mtime, and
				// an app layer of its own.
				mtime := time.Unix(1_700_000_000+int64(p*1000+n), 0)
				img := image(t, tarLayer(t, 1, 12, 0, mtime), tarLayer(t, uint64(p*10000+n), 0, 3, mtime))
				ref := fmt.Sprintf("%s:p%d-%d", repo, p, n)
				err := remote.Write(h.ref(ref), img, remote.WithContext(ctx))
				switch {
				case err == nil:
					pushes.Add(1)
				case ctx.Err() != nil:
				case isManifestBlobUnknown(err):
					// A layer's link was reaped before the manifest
					// came (grace period too short for this push): the
					// push failed as it says, nothing else.
				default:
					fail("push %s: %v", ref, err)
				}
			}
		}()
	}
	for q := range pullers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(q), 5))
			for ctx.Err() == nil {
				repo := fmt.Sprintf("ci/app%d", r.IntN(repos))
				tags, err := remote.List(h.ref(repo).Context(), remote.WithContext(ctx))
				if err != nil || len(tags) == 0 {
					continue
				}
				tag := tags[r.IntN(len(tags))]
				err = pullCheck(h.host, repo+":"+tag)
				switch {
				case err == nil:
					pulls.Add(1)
				case ctx.Err() != nil:
				case isNotFound(err) || strings.Contains(err.Error(), "404"):
					// Deleted by retention before or during the pull: fine
					// only if the tag is gone by now.
					if _, err := h.graph.ResolveTag(repo, tag); errors.Is(err, refgraph.ErrNotFound) {
						gone.Add(1)
					} else {
						fail("pull %s:%s: 404 while the tag exists: %v", repo, tag, err)
					}
				default:
					fail("pull %s:%s: %v", repo, tag, err)
				}
			}
		}()
	}
	var gcReports, cancelled []*gc.Report
	var deadSealed, deadAll []float64 // after each run
	// /metrics is scraped twice a second during the load, as Prometheus
	// would (faster): every scrape parses, and counters never go back.
	var scrapes metricsScrapes
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := scrapes.scrape(h); err != nil {
				fail("%v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			r, err := h.col.Run(ctx, cfg, false)
			if err != nil && ctx.Err() == nil {
				fail("gc: %v", err)
			}
			if err != nil && ctx.Err() != nil {
				cancelled = append(cancelled, r) // cut short by the end of the load
			}
			if err == nil {
				gcRuns.Add(1)
				gcDeleted.Add(int64(r.ManifestsDeleted))
				gcReports = append(gcReports, r)
				sealed, all := deadFractions(t, h)
				deadSealed, deadAll = append(deadSealed, sealed), append(deadAll, all)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	// Steady state: the second half of the runs.
	half := len(deadSealed) / 2
	t.Logf("dead bytes at steady state (after each of the last %d gc runs): sealed packs mean %.1f%%, max %.1f%%; all packs (open and retired too) mean %.1f%%",
		len(deadSealed)-half, 100*mean(deadSealed[half:]), 100*maxOf(deadSealed[half:]), 100*mean(deadAll[half:]))
	var deleted, reaped, blobs, repacked, packsDeleted, inUse int
	for _, r := range gcReports {
		inUse += r.PacksInUse
		deleted += r.ManifestsDeleted
		reaped += r.LinksReaped
		blobs += r.BlobsDeleted
		repacked += r.PacksRepacked
		packsDeleted += r.PacksDeleted
	}
	t.Logf("%d pushes, %d verified pulls, %d pulls of deleted images; %d gc runs: %d manifests, %d links, %d blobs deleted, %d packs repacked (%d retried: taken up meanwhile), %d deleted",
		pushes.Load(), pulls.Load(), gone.Load(), gcRuns.Load(), deleted, reaped, blobs, repacked, inUse, packsDeleted)
	for _, f := range failures {
		t.Error(f)
	}
	if pushes.Load() < 10 || pulls.Load() == 0 || deleted == 0 {
		t.Fatalf("too little happened to mean anything")
	}

	// Quiesce: conversions finish, grace periods pass, GC converges.
	waitConverted(t, h)
	for range 4 {
		h.clock.advance(time.Hour)
		gcReports = append(gcReports, h.run(cfg))
	}
	h.fsck()
	live := checkStoredMatchesSurvivors(t, h, cfg)
	checkMetrics(t, h, &scrapes, append(gcReports, cancelled...), live)
	if sealed, _ := deadFractions(t, h); sealed > 1-cfg.RepackBelow {
		t.Errorf("after GC converged, %.1f%% of the sealed packs' bytes are dead (repack_below %.2f)", 100*sealed, cfg.RepackBelow)
	}
}

// deadFractions returns the dead share of the bytes of the sealed packs
// GC may repack (not open, not retired), and of all packs the index
// counts.
func deadFractions(t *testing.T, h *harness) (sealed, all float64) {
	open := map[string]bool{}
	for _, p := range h.store.OpenPacks() {
		open[p] = true
	}
	var total, live, allTotal, allLive int64
	err := h.graph.Packs(func(p refgraph.Pack) error {
		allTotal += p.TotalBytes
		allLive += p.LiveBytes
		if retired, err := h.graph.Retired(p.Name); err != nil || retired || open[p.Name] {
			return err
		}
		total += p.TotalBytes
		live += p.LiveBytes
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dead := func(live, total int64) float64 {
		if total == 0 {
			return 0
		}
		return 1 - float64(live)/float64(total)
	}
	return dead(live, total), dead(allLive, allTotal)
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(max(len(xs), 1))
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func isManifestBlobUnknown(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			if d.Code == transport.ManifestBlobUnknownErrorCode || d.Code == "MANIFEST_BLOB_UNKNOWN" {
				return true
			}
		}
	}
	return false
}

func waitConverted(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for h.graph.Stats().PendingConversions > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d conversions still pending", h.graph.Stats().PendingConversions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkStoredMatchesSurvivors: every image left pulls byte for byte, the
// index holds exactly their blobs, and the packs hold little more than
// their chunks.
func checkStoredMatchesSurvivors(t *testing.T, h *harness, cfg gc.Config) (live int64) {
	t.Helper()
	need := map[digest.Digest]bool{}
	images := 0
	repos, _, err := h.graph.Repos("", -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range repos {
		mans, err := h.graph.Manifests(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mans {
			need[m.Digest] = true
			for _, r := range m.Refs {
				need[r] = true
			}
		}
		tags, err := h.graph.TagRecords(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			h.mustPull(repo + ":" + tag.Name)
			images++
		}
	}
	st := h.graph.Stats()
	if int(st.Blobs) != len(need) {
		t.Errorf("index holds %d blobs, the %d surviving images need %d", st.Blobs, images, len(need))
	}
	seen := map[string]bool{}
	for d := range need {
		b, err := h.graph.Blob(d)
		if err != nil {
			t.Fatalf("blob %s: %v", d, err)
		}
		for _, c := range b.Chunks {
			if seen[string(c.ID[:])] {
				continue
			}
			seen[string(c.ID[:])] = true
			ch, err := h.graph.Chunk(c.ID)
			if err != nil {
				t.Fatal(err)
			}
			live += int64(ch.Loc.StoredLen)
		}
	}
	if live != st.LiveStoredBytes {
		t.Errorf("live stored bytes %d, the survivors' chunks %d", st.LiveStoredBytes, live)
	}
	slack := float64(live)/cfg.RepackBelow + float64(2<<20) // the open pack and one small one
	t.Logf("%d images in %d repos: %d blobs, %d chunk bytes needed, %d pack bytes stored (%.3f)",
		images, len(repos), len(need), live, st.PackBytes, float64(st.PackBytes)/float64(max(live, 1)))
	if float64(st.PackBytes) > slack {
		t.Errorf("stored %d pack bytes for %d live (threshold %.2f)", st.PackBytes, live, cfg.RepackBelow)
	}
	return live
}

// metricsScrapes checks scrapes taken during the load.
type metricsScrapes struct {
	n                 int
	took              []time.Duration
	requests, gcRuns  float64
	regressed, failed int
}

func (m *metricsScrapes) scrape(h *harness) error {
	start := time.Now()
	s, err := opstest.Get(h.admin)
	if err != nil {
		return fmt.Errorf("scrape during the load: %w", err)
	}
	m.n++
	m.took = append(m.took, time.Since(start))
	req, runs := s.Sum("chunkyard_http_requests_total"), s.Sum("chunkyard_gc_runs_total")
	if req < m.requests || runs < m.gcRuns {
		return fmt.Errorf("a counter went back: requests %g after %g, gc runs %g after %g", req, m.requests, runs, m.gcRuns)
	}
	m.requests, m.gcRuns = req, runs
	return nil
}

// checkMetrics scrapes /metrics once the load is over and GC converged,
// and reconciles it with what `chunkyard stats` reports (stored bytes:
// the packs listed in the backend, open packs and pending bytes), with
// the survivors' chunks (live stored bytes), with every request the API
// answered (counted outside the metrics) and with the GC reports (runs
// cut short by the end of the load included: they count as runs, not as
// failures).
func checkMetrics(t *testing.T, h *harness, during *metricsScrapes, reports []*gc.Report, live int64) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // the last requests' handlers return after their answers went
	start := time.Now()
	s, err := opstest.Get(h.admin)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st, err := h.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g := h.graph.Stats()
	stored := st.PackBytes + st.OpenPackBytes + g.PendingBytes // as `chunkyard stats` prints it
	var reclaimed, manifests int64
	for _, r := range reports {
		reclaimed += r.PackBytesDeleted
		manifests += int64(r.ManifestsDeleted)
	}
	for name, want := range map[string]float64{
		"chunkyard_stored_bytes":               float64(stored),
		"chunkyard_live_stored_bytes":          float64(live),
		"chunkyard_logical_bytes":              float64(g.LogicalBytes),
		"chunkyard_dedup_ratio":                float64(g.LogicalBytes) / float64(stored),
		"chunkyard_pending_conversions":        0,
		"chunkyard_gc_runs_total":              float64(len(reports)),
		"chunkyard_gc_failed_runs_total":       0,
		"chunkyard_gc_reclaimed_bytes_total":   float64(reclaimed),
		"chunkyard_gc_manifests_deleted_total": float64(manifests),
	} {
		if v, err := s.Value(name); err != nil || v != want {
			t.Errorf("metric %s = %g (%v), want %g", name, v, err, want)
		}
	}
	served := h.served.counts()
	total := 0
	for ms, n := range served {
		total += n
		method, status, _ := strings.Cut(ms, " ")
		if got := s.Sum("chunkyard_http_requests_total", "method="+method, "status="+status); got != float64(n) {
			t.Errorf("%s requests answered %s: %d served, %g counted", method, status, n, got)
		}
	}
	if got := s.Sum("chunkyard_http_requests_total"); got != float64(total) || total == 0 {
		t.Errorf("requests counted %g, served %d", got, total)
	}
	if got := s.Sum("chunkyard_http_request_duration_seconds"); got != float64(total) {
		t.Errorf("latencies observed %g, requests served %d", got, total)
	}
	if s.Sum("chunkyard_http_request_bytes_total") == 0 || s.Sum("chunkyard_http_response_bytes_total") == 0 {
		t.Error("no bytes in or out counted")
	}
	if s.Sum("chunkyard_converted_layers_total") == 0 {
		t.Error("no layer conversion counted")
	}
	slices.Sort(during.took)
	p50, pmax := time.Duration(0), time.Duration(0)
	if n := len(during.took); n > 0 {
		p50, pmax = during.took[n/2], during.took[n-1]
	}
	t.Logf("metrics: %d scrapes during the load (median %s, max %s), final scrape %s; %d requests served and counted, stored bytes %d, gc runs %d, reclaimed %d bytes",
		during.n, p50.Round(time.Microsecond), pmax.Round(time.Microsecond), took.Round(time.Microsecond), total, stored, len(reports), reclaimed)
	if during.n == 0 {
		t.Error("/metrics was never scraped during the load")
	}
}
