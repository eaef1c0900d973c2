package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/scan"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Scan errors; test with errors.Is.
var (
	// ErrNotImage: the manifest is not a container image (an artifact, a
	// Helm chart, a signature): there is nothing to scan.
	ErrNotImage = errors.New("not a container image")
	// ErrScanningOff: the service runs without scanning.
	ErrScanningOff = errors.New("vulnerability scanning is off")
)

// Scan statuses of ScanResult.
const (
	ScanQueued  = "queued"
	ScanRunning = "running"
	ScanDone    = "done"
)

// ScanResult is the scan of an image or an index as served: its status
// and, when done, its report (Report for an image, Index for an index).
type ScanResult struct {
	Status string `json:"status"`
	// Layers counts the layers to analyze, Analyzed those done (an
	// index: over its platform images).
	Layers   int               `json:"layers"`
	Analyzed int               `json:"analyzed"`
	Report   *scan.Report      `json:"-"`
	Index    *scan.IndexReport `json:"-"`
}

const dockerImageConfig = "application/vnd.docker.container.image.v1+json"

// imageRecordOf says whether a manifest is a container image (an image
// config, tar layers) and which of its layers a scan reads.
func (s *Service) imageRecordOf(body manifestBody) (scan.ImageRecord, bool) {
	var rec scan.ImageRecord
	if body.Config == nil || body.Config.MediaType != ocispec.MediaTypeImageConfig && body.Config.MediaType != dockerImageConfig {
		return rec, false
	}
	rec.Layers = []string{}
	for _, l := range body.Layers {
		switch {
		case !strings.Contains(l.MediaType, ".tar"):
			rec.Notes = append(rec.Notes, scan.Note{Layer: string(l.Digest), Message: fmt.Sprintf("layer not read: media type %q is not a tar layer", l.MediaType)})
		case len(l.URLs) > 0 && !s.blobExists(l.Digest):
			rec.Notes = append(rec.Notes, scan.Note{Layer: string(l.Digest), Message: "foreign layer not read: the registry does not hold it"})
		default:
			rec.Layers = append(rec.Layers, string(l.Digest))
		}
	}
	return rec, true
}

// scanManifest records a pushed image manifest for scanning and queues
// its layers. A failure is logged, not returned: the push is stored, and
// the image is recorded again when its scan is asked for.
func (s *Service) scanManifest(ctx context.Context, d digest.Digest, mediaType string, body manifestBody) {
	if !s.scans.on() || isIndex(mediaType) {
		return
	}
	rec, ok := s.imageRecordOf(body)
	if !ok {
		return
	}
	if err := s.registerImage(ctx, d, rec); err != nil {
		s.log.Warn("scan: queueing a pushed image", "manifest", d, "err", err)
	}
}

func (s *Service) registerImage(ctx context.Context, d digest.Digest, rec scan.ImageRecord) error {
	db := s.scans.db
	if err := db.PutImage(ctx, string(d), rec); err != nil {
		return err
	}
	n, err := db.Enqueue(ctx, rec.Layers, time.Now())
	if err != nil {
		return err
	}
	if n > 0 {
		s.scans.wake()
	}
	return nil
}

// manifestBodyOf reads and decodes manifest d.
func (s *Service) manifestBodyOf(ctx context.Context, d digest.Digest) (manifestBody, error) {
	var body manifestBody
	b, err := s.graph.Blob(d)
	if err != nil {
		return body, notFound(err, ErrManifestUnknown, d)
	}
	if b.Size > s.maxMan {
		return body, fmt.Errorf("%w: manifest %s of %d bytes", ErrTooLarge, d, b.Size)
	}
	content, err := s.readAll(ctx, b)
	if err != nil {
		return body, err
	}
	if err := json.Unmarshal(content, &body); err != nil {
		return body, fmt.Errorf("registry: manifest %s: %w", d, err)
	}
	return body, nil
}

// ScanReport returns the scan of manifest ref (tag or digest) of repo:
// not done yet (its layers queued or being analyzed), or its report, one
// per platform image for an index. It reads no layer: the workers do.
func (s *Service) ScanReport(ctx context.Context, repo, ref string) (_ *ScanResult, err error) {
	defer guard(&err) // a failed index: ErrStorageFailure, not a panic
	if !s.scans.on() {
		return nil, ErrScanningOff
	}
	m, err := s.StatManifest(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	if !isIndex(m.MediaType) {
		return s.imageScan(ctx, m.Digest)
	}
	body, err := s.manifestBodyOf(ctx, m.Digest)
	if err != nil {
		return nil, err
	}
	res := &ScanResult{Status: ScanDone, Index: &scan.IndexReport{Index: string(m.Digest), Reports: []scan.Report{}}}
	for _, desc := range body.Manifests {
		if desc.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			continue // BuildKit's provenance and SBOM attestations
		}
		r, err := s.imageScan(ctx, desc.Digest)
		if errors.Is(err, ErrNotImage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		res.Layers += r.Layers
		res.Analyzed += r.Analyzed
		switch {
		case r.Status == ScanRunning || r.Status == ScanQueued && res.Status == ScanDone:
			res.Status = r.Status
		case r.Status == ScanDone:
			rep := *r.Report
			if p := desc.Platform; p != nil {
				rep.Platform = p.OS + "/" + p.Architecture
				if p.Variant != "" {
					rep.Platform += "/" + p.Variant
				}
			}
			if rep.Feed.Generation >= res.Index.Feed.Generation {
				res.Index.Feed = rep.Feed
			}
			res.Index.Reports = append(res.Index.Reports, rep)
		}
	}
	if res.Status != ScanDone {
		res.Index = nil
	}
	return res, nil
}

// ScanNow is ScanReport after analyzing, here and now, the layers of the
// image (or of an index's images) that have no inventory: for a scan of
// a stopped data dir, where no worker runs.
func (s *Service) ScanNow(ctx context.Context, repo, ref string) (_ *ScanResult, err error) {
	defer guard(&err) // a failed index: ErrStorageFailure, not a panic
	if !s.scans.on() {
		return nil, ErrScanningOff
	}
	m, err := s.StatManifest(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	images := []digest.Digest{m.Digest}
	if isIndex(m.MediaType) {
		body, err := s.manifestBodyOf(ctx, m.Digest)
		if err != nil {
			return nil, err
		}
		images = images[:0]
		for _, desc := range body.Manifests {
			images = append(images, desc.Digest)
		}
	}
	db := s.scans.db
	for _, d := range images {
		res, err := s.imageScan(ctx, d) // records the image if need be
		if errors.Is(err, ErrNotImage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if res.Status == ScanDone {
			continue
		}
		rec, _, err := db.Image(ctx, string(d))
		if err != nil {
			return nil, err
		}
		_, waiting, _, err := db.ImageLayers(ctx, rec)
		if err != nil {
			return nil, err
		}
		for _, l := range waiting {
			if _, err := s.AnalyzeLayer(ctx, digest.Digest(l)); err != nil {
				return nil, fmt.Errorf("analyzing layer %s: %w", l, err)
			}
		}
	}
	return s.ScanReport(ctx, repo, ref)
}

// imageScan returns the scan of image manifest d.
func (s *Service) imageScan(ctx context.Context, d digest.Digest) (*ScanResult, error) {
	db := s.scans.db
	rec, ok, err := db.Image(ctx, string(d))
	if err != nil {
		return nil, err
	}
	if !ok {
		// Pushed before scanning was on, or its record lost to a crash
		// between the manifest's batch and its own: record it now.
		body, err := s.manifestBodyOf(ctx, d)
		if err != nil {
			return nil, err
		}
		r, isImage := s.imageRecordOf(body)
		if !isImage {
			return nil, fmt.Errorf("%w: manifest %s", ErrNotImage, d)
		}
		if err := s.registerImage(ctx, d, r); err != nil {
			return nil, err
		}
		rec = &r
	}
	done, waiting, failed, err := db.ImageLayers(ctx, rec)
	if err != nil {
		return nil, err
	}
	res := &ScanResult{Status: ScanDone, Layers: len(rec.Layers), Analyzed: len(rec.Layers) - len(waiting)}
	if len(waiting) > 0 {
		res.Status = ScanQueued
		for _, l := range waiting {
			if s.scans.isRunning(l) {
				res.Status = ScanRunning
			}
		}
		// A layer neither analyzed nor queued (its entry lost) is queued.
		if n, err := db.Enqueue(ctx, waiting, time.Now()); err != nil {
			return nil, err
		} else if n > 0 {
			s.scans.wake()
		}
		return res, nil
	}
	res.Report, err = s.imageReport(ctx, nil, d, rec, done, failed, true)
	return res, err
}

// imageReport matches an image whose layers are all analyzed (or given
// up on) and keeps the report, unless the feed changed meanwhile. With
// useCache, a kept report that is still fresh for the feed is returned
// instead. mt, if not nil, is the Matcher to use (a re-match of many
// images).
func (s *Service) imageReport(ctx context.Context, mt *scan.Matcher, d digest.Digest, rec *scan.ImageRecord, layers []scan.LayerInventory, failed map[string]scan.Abandoned, useCache bool) (*scan.Report, error) {
	r, keep, err := s.matchImage(ctx, mt, d, rec, layers, failed, useCache)
	if err == nil && keep {
		err = s.scans.db.PutReport(ctx, string(d), r)
	}
	return r, err
}

// matchImage is imageReport without storing the report; keep says it is
// to be stored (matched now, against a feed that did not change
// meanwhile).
func (s *Service) matchImage(ctx context.Context, mt *scan.Matcher, d digest.Digest, rec *scan.ImageRecord, layers []scan.LayerInventory, failed map[string]scan.Abandoned, useCache bool) (*scan.Report, bool, error) {
	db := s.scans.db
	for i, l := range layers {
		if l.Inventory == nil {
			a := failed[l.Digest]
			layers[i].Inventory = &scan.Inventory{AnalyzerVersion: scan.AnalyzerVersion, Packages: []scan.Package{}, Incomplete: true,
				Notes: []scan.Note{{Message: fmt.Sprintf("layer not analyzed: given up after %d attempts: %s", a.Attempts, a.LastError)}}}
		}
	}
	if useCache {
		if r, ok, err := db.CachedReport(ctx, string(d)); err != nil {
			return nil, false, err
		} else if ok {
			r.Packages = scan.Union(layers).Packages
			cur, fresh, err := db.Fresh(ctx, r)
			if err != nil {
				return nil, false, err
			}
			if fresh {
				// If generations passed, they changed none of its
				// packages: it is this feed's report too.
				keep := r.Feed.Generation != cur.Generation
				r.Feed = cur
				return r, keep, nil
			}
		}
	}
	if mt == nil {
		mt = db.NewMatcher()
	}
	r, err := mt.Report(ctx, string(d), layers)
	if err != nil {
		return nil, false, err
	}
	r.Notes = append(append([]scan.Note{}, rec.Notes...), r.Notes...)
	after, err := db.Feed(ctx)
	if err != nil {
		return nil, false, err
	}
	importing, err := db.Importing(ctx)
	if err != nil {
		return nil, false, err
	}
	return r, after.Generation == r.Feed.Generation && !importing, nil
}

// reportImage matches image d if all its layers are analyzed, so that
// its report is ready before anyone asks.
func (s *Service) reportImage(ctx context.Context, d digest.Digest) {
	if err := s.reportImageWith(ctx, nil, d); err != nil && ctx.Err() == nil {
		s.log.Warn("scan: reporting an image", "manifest", d, "err", err)
	}
}

func (s *Service) reportImageWith(ctx context.Context, mt *scan.Matcher, d digest.Digest) error {
	r, keep, err := s.matchStored(ctx, mt, nil, d)
	if err == nil && keep {
		err = s.scans.db.PutReport(ctx, string(d), r)
	}
	return err
}

// matchStored matches image d if all its layers are analyzed (nil if
// not); keep as for matchImage.
func (s *Service) matchStored(ctx context.Context, mt *scan.Matcher, invs map[string]*scan.Inventory, d digest.Digest) (*scan.Report, bool, error) {
	db := s.scans.db
	rec, ok, err := db.Image(ctx, string(d))
	if err != nil || !ok {
		return nil, false, err
	}
	done, waiting, failed, err := db.ImageLayersCached(ctx, rec, invs)
	if err != nil || len(waiting) > 0 {
		return nil, false, err
	}
	return s.matchImage(ctx, mt, d, rec, done, failed, false)
}

// reportImagesOf reports the images holding layer that it completes.
func (s *Service) reportImagesOf(ctx context.Context, layer string) {
	images, err := s.scans.db.ImagesUsing(ctx, layer)
	if err != nil {
		s.log.Warn("scan: images of a layer", "layer", layer, "err", err)
		return
	}
	for _, m := range images {
		s.reportImage(ctx, digest.Digest(m))
	}
}

// ImportResult is what an advisory import did.
type ImportResult struct {
	Read       int      `json:"read"`
	Added      int      `json:"added"`
	Updated    int      `json:"updated"`
	Unchanged  int      `json:"unchanged"`
	Withdrawn  int      `json:"withdrawn"`
	Bad        int      `json:"bad"`
	BadRecords []string `json:"bad_records,omitempty"`
	// ChangedPackages counts the packages whose advisories changed: the
	// images holding one are matched again.
	ChangedPackages int           `json:"changed_packages"`
	Feed            scan.FeedInfo `json:"feed"`
	// Changed are those packages (for Rematch).
	Changed []scan.PackageKey `json:"-"`
}

// maxRecordSize bounds one OSV JSON record posted alone.
const maxRecordSize = 16 << 20

// ImportAdvisories imports OSV advisories from r: one JSON record, or a
// zip of records (as osv.dev publishes all.zip), spooled to a file in
// spoolDir ("": the system's temporary directory) of at most maxZip bytes
// (0: no bound). One import runs at a time; the images the import
// concerns are matched again in the background (Run), and a report asked
// for meanwhile is matched against the new feed then.
func (s *Service) ImportAdvisories(ctx context.Context, r io.Reader, spoolDir string, maxZip int64) (_ ImportResult, err error) {
	defer guard(&err) // a failed index: ErrStorageFailure, not a panic
	br := &peekReader{r: r}
	head, err := br.peek(4)
	if err != nil {
		return ImportResult{}, err
	}
	s.scans.importMu.Lock()
	defer s.scans.importMu.Unlock()
	db := s.scans.db
	var st scan.ImportStats
	if bytes.Equal(head, []byte("PK\x03\x04")) {
		f, err := os.CreateTemp(spoolDir, "chunkyard-vulndb-*.zip")
		if err != nil {
			return ImportResult{}, fmt.Errorf("registry: spooling advisories: %w", err)
		}
		defer func() { f.Close(); os.Remove(f.Name()) }()
		src := io.Reader(br)
		if maxZip > 0 {
			src = io.LimitReader(br, maxZip+1)
		}
		n, err := io.Copy(f, src)
		if err != nil {
			return ImportResult{}, fmt.Errorf("registry: spooling advisories: %w", err)
		}
		if maxZip > 0 && n > maxZip {
			return ImportResult{}, fmt.Errorf("%w: advisory zip over %d bytes", ErrTooLarge, maxZip)
		}
		st, err = db.ImportZip(ctx, f, n)
		if err != nil {
			return s.imported(st, err)
		}
	} else {
		data, err := io.ReadAll(io.LimitReader(br, maxRecordSize+1))
		if err != nil {
			return ImportResult{}, fmt.Errorf("registry: reading advisory: %w", err)
		}
		if len(data) > maxRecordSize {
			return ImportResult{}, fmt.Errorf("%w: advisory record over %d bytes (post a zip)", ErrTooLarge, maxRecordSize)
		}
		st, err = db.ImportRecord(ctx, data)
		if err != nil {
			return s.imported(st, fmt.Errorf("%w: %v", ErrAdvisoryInvalid, err))
		}
	}
	return s.imported(st, nil)
}

// ErrAdvisoryInvalid: a posted record is not an OSV record.
var ErrAdvisoryInvalid = errors.New("advisory invalid")

// ImportAdvisoriesPath imports OSV advisories from a file, zip or
// directory (see scan.DB.Import).
func (s *Service) ImportAdvisoriesPath(ctx context.Context, path string) (_ ImportResult, err error) {
	defer guard(&err) // a failed index: ErrStorageFailure, not a panic
	s.scans.importMu.Lock()
	defer s.scans.importMu.Unlock()
	st, err := s.scans.db.Import(ctx, path)
	return s.imported(st, err)
}

// imported summarises an import and hands its changes to the
// re-matcher.
func (s *Service) imported(st scan.ImportStats, err error) (ImportResult, error) {
	res := ImportResult{Read: st.Read, Added: st.Added, Updated: st.Updated, Unchanged: st.Unchanged,
		Withdrawn: st.Withdrawn, Bad: st.Bad, BadRecords: st.BadRecords, ChangedPackages: len(st.Changed), Changed: st.Changed}
	fi, ferr := s.scans.db.Feed(context.Background())
	res.Feed = fi
	if err == nil {
		err = ferr
	}
	if len(st.Changed) > 0 {
		s.scans.addChanges(st.Changed)
	}
	return res, err
}

type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		b := make([]byte, n-len(p.buf))
		k, err := p.r.Read(b)
		p.buf = append(p.buf, b[:k]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return p.buf, nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// RematchStats says what a re-match did.
type RematchStats struct {
	Layers   int           `json:"layers"`   // layers holding a changed package
	Images   int           `json:"images"`   // images holding them, matched again
	Duration time.Duration `json:"duration"` // wall time
}

// Rematch matches again the images holding a package of changed (all
// images if all), from their stored inventories: no layer is read.
func (s *Service) Rematch(ctx context.Context, changed []scan.PackageKey, all bool) (RematchStats, error) {
	start := time.Now()
	db := s.scans.db
	var st RematchStats
	images := map[string]bool{}
	if all {
		if err := db.Images(ctx, func(m string) error { images[m] = true; return nil }); err != nil {
			return st, err
		}
	} else {
		layers := map[string]bool{}
		for _, k := range changed {
			ls, err := db.LayersNaming(ctx, k)
			if err != nil {
				return st, err
			}
			for _, l := range ls {
				layers[l] = true
			}
		}
		st.Layers = len(layers)
		for l := range layers {
			ms, err := db.ImagesUsing(ctx, l)
			if err != nil {
				return st, err
			}
			for _, m := range ms {
				images[m] = true
			}
		}
	}
	list := make([]string, 0, len(images))
	for m := range images {
		list = append(list, m)
	}
	sort.Strings(list)
	// One goroutine per CPU, each with its own Matcher, over a share of
	// the images: the advisories and verdicts of the packages its images
	// share are read and evaluated once. Reports are stored many to a
	// batch.
	workers := min(runtime.GOMAXPROCS(0), max(1, len(list)/64))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		done  int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.survive("re-match")
			n, err := s.rematchShare(ctx, list[w*len(list)/workers:(w+1)*len(list)/workers])
			mu.Lock()
			defer mu.Unlock()
			done += n
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	st.Images = done
	st.Duration = time.Since(start)
	return st, first
}

// rematchShare matches images again with one Matcher and returns how
// many it matched.
func (s *Service) rematchShare(ctx context.Context, list []string) (int, error) {
	db := s.scans.db
	mt := db.NewMatcher()
	invs := map[string]*scan.Inventory{}
	batch := map[string]*scan.Report{}
	n := 0
	for _, m := range list {
		r, keep, err := s.matchStored(ctx, mt, invs, digest.Digest(m))
		if err != nil {
			return n, err
		}
		if r == nil {
			continue // not all its layers analyzed: matched when they are
		}
		if keep {
			batch[m] = r
		}
		if len(batch) == rematchBatch {
			if err := db.PutReports(ctx, batch); err != nil {
				return n, err
			}
			clear(batch)
		}
		n++
		s.scans.rematched.Add(1)
	}
	return n, db.PutReports(ctx, batch)
}

// rematchBatch is how many reports a re-match stores per index batch.
const rematchBatch = 256

// addChanges hands an import's changed packages to the re-matcher.
func (sc *scanner) addChanges(keys []scan.PackageKey) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.changes == nil {
		sc.changes = map[scan.PackageKey]bool{}
	}
	for _, k := range keys {
		sc.changes[k] = true
	}
	select {
	case sc.rematch <- struct{}{}:
	default:
	}
}

// runRematcher matches again, after each import, the images it concerns.
func (s *Service) runRematcher(ctx context.Context) {
	defer s.survive("re-matcher")
	sc := s.scans
	for {
		select {
		case <-ctx.Done():
			return
		case <-sc.rematch:
		}
		sc.mu.Lock()
		keys := make([]scan.PackageKey, 0, len(sc.changes))
		for k := range sc.changes {
			keys = append(keys, k)
		}
		sc.changes = nil
		sc.mu.Unlock()
		st, err := s.Rematch(ctx, keys, false)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("scan: matching images again after a feed update", "err", err)
			}
			continue
		}
		rate := 0.0
		if st.Duration > 0 {
			rate = float64(st.Images) / st.Duration.Seconds()
		}
		s.log.Info("scan: matched images again after a feed update", "packages", len(keys), "layers", st.Layers,
			"images", st.Images, "duration", st.Duration.Round(time.Millisecond), "images_per_second", int(rate))
	}
}

// scanBlobDeleted drops what the scan space keeps for a blob garbage
// collection deleted: a layer's inventories and queue entry, an image's
// record and report.
func (s *Service) scanBlobDeleted(d digest.Digest) {
	ctx := context.Background()
	db := s.scans.db
	if err := db.ForgetLayer(ctx, string(d)); err != nil {
		s.log.Warn("scan: dropping a deleted layer's inventory", "digest", d, "err", err)
	}
	if err := db.DeleteImage(ctx, string(d)); err != nil {
		s.log.Warn("scan: dropping a deleted image's record", "digest", d, "err", err)
	}
}

// scanStartup runs when the workers start: it finishes the record of an
// import a crash cut off, drops what the scan space keeps for blobs
// deleted while no server ran (chunkyard gc), and, once per data dir,
// records for scanning the images pushed before scanning was on.
func (s *Service) scanStartup(ctx context.Context) error {
	db := s.scans.db
	if err := db.RecoverImport(ctx); err != nil {
		return err
	}
	var gone []string
	collect := func(d string) error {
		if _, err := s.graph.Blob(digest.Digest(d)); errors.Is(err, refgraph.ErrNotFound) {
			gone = append(gone, d)
		} else if err != nil {
			return err
		}
		return nil
	}
	if err := db.Layers(ctx, collect); err != nil {
		return err
	}
	if err := db.Images(ctx, collect); err != nil {
		return err
	}
	for _, d := range gone {
		s.scanBlobDeleted(digest.Digest(d))
	}
	if len(gone) > 0 {
		s.log.Info("scan: dropped the records of blobs deleted while the server was down", "blobs", len(gone))
	}
	const mark = "registered-existing-images"
	if done, err := db.Marked(ctx, mark); err != nil || done {
		return err
	}
	n := 0
	err := s.graph.AllManifests(func(repo string, m refgraph.Manifest) error {
		if isIndex(m.MediaType) {
			return nil
		}
		if _, ok, err := db.Image(ctx, string(m.Digest)); err != nil || ok {
			return err
		}
		body, err := s.manifestBodyOf(ctx, m.Digest)
		if err != nil {
			s.log.Warn("scan: reading a stored manifest", "manifest", m.Digest, "err", err)
			return nil
		}
		if rec, ok := s.imageRecordOf(body); ok {
			n++
			return s.registerImage(ctx, m.Digest, rec)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("scan: queued the images stored before scanning was on", "images", n)
	}
	return db.Mark(ctx, mark)
}
