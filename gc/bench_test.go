package gc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/gc"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushDirect pushes an image of the given layer blobs through the
// service (no HTTP: the benchmark's setup is about the index, not the
// wire) and returns the digests of its blobs.
func (h *harness) pushDirect(ctx context.Context, repo, tag string, layers ...[]byte) []digest.Digest {
	h.t.Helper()
	put := func(b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		id, err := h.svc.StartUpload(ctx, repo)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.svc.FinishUpload(ctx, repo, id, d, 0, bytes.NewReader(b)); err != nil {
			h.t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(b))}
	}
	cfg := put([]byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","tag":%q}`, repo+tag)))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg}
	m.SchemaVersion = 2
	out := []digest.Digest{cfg.Digest}
	for _, l := range layers {
		desc := put(l)
		m.Layers = append(m.Layers, desc)
		out = append(out, desc.Digest)
	}
	body, _ := json.Marshal(m)
	d, _, err := h.svc.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return append(out, d)
}

// BenchmarkGC: a store of 3,400 images (10,250 blobs: config, a layer
// shared by the images of a repository, a layer of its own, manifest) in
// 50 repositories; a policy keeping the last 34 tags of each deletes half.
// It reports the run times (retention; then, a grace period later,
// reclaiming and repacking; then deleting the retired packs), the bytes
// reclaimed, and the latency of pulls made while the runs go, against
// the same pulls with no GC, as a ratio.
func BenchmarkGC(b *testing.B) {
	const repos, perRepo = 50, 68
	for range b.N {
		b.StopTimer()
		h := newHarness(b, harnessOpts{packSize: 4 << 20})
		ctx := context.Background()
		var keep [][]digest.Digest
		for r := range repos {
			repo := fmt.Sprintf("ci/svc%d", r)
			shared := randomBytes(uint64(r), 32<<10)
			for i := range perRepo {
				ds := h.pushDirect(ctx, repo, fmt.Sprintf("b%d", i), shared, randomBytes(uint64(r*perRepo+i+1000), 24<<10))
				if i >= perRepo/2 {
					keep = append(keep, ds)
				}
				h.clock.advance(time.Second)
			}
		}
		st := h.graph.Stats()
		if st.Blobs < 10000 {
			b.Fatalf("%d blobs", st.Blobs)
		}
		pullAll := func(stop <-chan struct{}) []time.Duration {
			var lat []time.Duration
			for i := 0; ; i++ {
				select {
				case <-stop:
					return lat
				default:
				}
				ds := keep[i%len(keep)]
				d := ds[1+i%2] // a layer
				start := time.Now()
				rc, _, err := h.svc.OpenBlob(ctx, fmt.Sprintf("ci/svc%d", (i%len(keep))/(perRepo/2)), d, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, rc)
				rc.Close()
				lat = append(lat, time.Since(start))
				if stop == nil && len(lat) == 2000 {
					return lat
				}
			}
		}
		base := pullAll(nil)

		cfg := testConfig(gc.Policy{Repos: "ci/.*", KeepLast: perRepo / 2, DeleteUntaggedOlderThan: gc.Duration(time.Nanosecond)})
		if err := cfg.Check(); err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var during []time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); during = pullAll(stop) }()
		b.StartTimer()
		var runs []*gc.Report
		for _, adv := range []time.Duration{0, 2 * time.Hour, 2 * time.Hour, 2 * time.Hour} {
			h.clock.advance(adv)
			r, err := h.col.Run(ctx, cfg, false)
			if err != nil {
				b.Fatal(err)
			}
			runs = append(runs, r)
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
		var total time.Duration
		var reclaimed int64
		for _, r := range runs {
			total += r.Duration
			reclaimed += r.PackBytesDeleted
		}
		after := h.graph.Stats()
		p := func(l []time.Duration, q float64) time.Duration {
			s := slices.Clone(l)
			slices.Sort(s)
			return s[int(q*float64(len(s)-1))]
		}
		b.ReportMetric(float64(st.Blobs), "blobs")
		b.ReportMetric(total.Seconds(), "gc-s")
		for i, r := range runs {
			b.ReportMetric(r.Duration.Seconds(), fmt.Sprintf("run%d-s", i+1))
		}
		b.ReportMetric(float64(reclaimed)/1e6, "reclaimed-MB")
		b.ReportMetric(float64(st.PackBytes)/1e6, "stored-before-MB")
		b.ReportMetric(float64(after.PackBytes)/1e6, "stored-after-MB")
		b.ReportMetric(float64(p(during, 0.5))/float64(p(base, 0.5)), "pull-p50-ratio")
		b.ReportMetric(float64(p(during, 0.95))/float64(p(base, 0.95)), "pull-p95-ratio")
		b.Logf("runs: %+v", summarize(runs))
		b.Logf("pulls: %d without GC (p50 %v, p95 %v), %d during (p50 %v, p95 %v)", len(base), p(base, .5), p(base, .95),
			len(during), p(during, .5), p(during, .95))
		h.fsck()
	}
}

func summarize(runs []*gc.Report) []string {
	var out []string
	for _, r := range runs {
		out = append(out, fmt.Sprintf("%v: %d tags, %d manifests, %d links, %d blobs, %d packs repacked (%d B copied), %d deleted (%d B)",
			r.Duration.Round(time.Millisecond), r.TagsDeleted, r.ManifestsDeleted, r.LinksReaped, r.BlobsDeleted,
			r.PacksRepacked, r.RepackCopiedBytes, r.PacksDeleted, r.PackBytesDeleted))
	}
	return out
}

// BenchmarkPushDuringReclaim: 10,000 blobs pushed and never used by a
// manifest are reclaimed by GC (their links reaped, then the blobs
// deleted) while 4 clients push small images (config, a 16 KiB layer,
// manifest: three uploads and index batches, chunks fsynced); it reports
// the image push latency during GC against the same pushes with no GC,
// as p50 and p99 and their ratios.
func BenchmarkPushDuringReclaim(b *testing.B) {
	const garbage, pushers = 10000, 4
	for range b.N {
		b.StopTimer()
		h := newHarness(b, harnessOpts{packSize: 8 << 20})
		ctx := context.Background()
		push := func(repo string, data []byte) time.Duration {
			start := time.Now()
			id, err := h.svc.StartUpload(ctx, repo)
			if err == nil {
				err = h.svc.FinishUpload(ctx, repo, id, digest.FromBytes(data), 0, bytes.NewReader(data))
			}
			if err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		for i := range garbage {
			push("junk", randomBytes(uint64(i)+1e6, 2<<10))
		}
		// Measures pushes by 4 clients until stop (or n pushes in all).
		seq := 0
		var seqMu sync.Mutex
		measure := func(stop <-chan struct{}, n int) []time.Duration {
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			for range pushers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						seqMu.Lock()
						seq++
						s := seq
						seqMu.Unlock()
						// An image: config, a layer, the manifest (so
						// that nothing of it is garbage).
						start := time.Now()
						h.pushDirect(ctx, "live", fmt.Sprintf("t%d", s), randomBytes(uint64(s), 16<<10))
						d := time.Since(start)
						mu.Lock()
						lat = append(lat, d)
						done := n > 0 && len(lat) >= n
						mu.Unlock()
						if done {
							return
						}
					}
				}()
			}
			wg.Wait()
			return lat
		}
		base := measure(nil, 2000)
		h.clock.advance(48 * time.Hour) // past the grace period
		cfg := testConfig()
		if err := cfg.Check(); err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		var during []time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); during = measure(stop, 0) }()
		b.StartTimer()
		// Runs until the blobs are gone (one run, or one for the links
		// and one for the blobs if each waits out its own grace period).
		r := &gc.Report{}
		for run := 0; run < 3 && r.BlobsDeleted < garbage; run++ {
			ri, err := h.col.Run(ctx, cfg, false)
			if err != nil {
				b.Fatal(err)
			}
			r.LinksReaped += ri.LinksReaped
			r.BlobsDeleted += ri.BlobsDeleted
			r.Duration += ri.Duration
			h.clock.advance(48 * time.Hour)
		}
		b.StopTimer()
		close(stop)
		wg.Wait()
		if r.BlobsDeleted < garbage {
			b.Fatalf("reclaimed %d blobs of %d", r.BlobsDeleted, garbage)
		}
		p := func(l []time.Duration, q float64) time.Duration {
			s := slices.Clone(l)
			slices.Sort(s)
			return s[int(q*float64(len(s)-1))]
		}
		b.ReportMetric(r.Duration.Seconds(), "gc-s")
		b.ReportMetric(float64(len(during)), "pushes-during")
		b.ReportMetric(float64(p(base, 0.5).Microseconds()), "push-p50-us")
		b.ReportMetric(float64(p(base, 0.99).Microseconds()), "push-p99-us")
		b.ReportMetric(float64(p(during, 0.5).Microseconds()), "push-p50-gc-us")
		b.ReportMetric(float64(p(during, 0.99).Microseconds()), "push-p99-gc-us")
		b.ReportMetric(float64(p(during, 0.5))/float64(p(base, 0.5)), "p50-ratio")
		b.ReportMetric(float64(p(during, 0.99))/float64(p(base, 0.99)), "p99-ratio")
		b.Logf("gc: %d links reaped, %d blobs deleted in %v; pushes: %d without GC (p50 %v, p99 %v), %d during (p50 %v, p99 %v)",
			r.LinksReaped, r.BlobsDeleted, r.Duration.Round(time.Millisecond), len(base), p(base, .5), p(base, .99),
			len(during), p(during, .5), p(during, .99))
	}
}
