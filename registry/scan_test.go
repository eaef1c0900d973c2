package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/scan"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newScanEnv is a service that converts and scans; tests run the queues
// themselves (drain, drainScans) to be deterministic.
func newScanEnv(t testing.TB, convert bool) *env {
	e := &env{t: t, dir: t.TempDir()}
	if convert {
		e.convert = ConvertOptions{Workers: 1, PendingDir: filepath.Join(e.dir, "pending")}
	}
	e.scan = ScanOptions{Workers: 1, TempDir: t.TempDir()}
	e.open()
	t.Cleanup(e.close)
	return e
}

// drainScans analyzes every layer queued, and returns how many.
func (e *env) drainScans() int {
	e.t.Helper()
	ctx := context.Background()
	n := 0
	seen := map[string]bool{} // a layer postponed is tried once per drain
	for {
		due, _, err := e.svc.scans.db.Due(ctx, time.Now().Add(time.Minute), 100)
		if err != nil {
			e.t.Fatal(err)
		}
		more := false
		for _, q := range due {
			if seen[q.Layer] {
				continue
			}
			seen[q.Layer], more = true, true
			if err := e.svc.scanLayer(ctx, q); err != nil {
				e.t.Fatalf("scan %s: %v", q.Layer, err)
			}
			n++
		}
		if !more {
			return n
		}
	}
}

type tarEntry struct {
	name, body string
}

func layerTar(t testing.TB, es ...tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		if strings.HasSuffix(e.name, "/") {
			tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o755, Typeflag: tar.TypeDir})
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func pkgJSON(name, version string) string {
	return `{"name":"` + name + `","version":"` + version + `","description":"test"}`
}

// pushImage pushes layers (compressed as given) and an image manifest
// naming them, tagged tag, and returns the manifest's digest.
func (e *env) pushImage(repo, tag string, layers ...[]byte) digest.Digest {
	e.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: e.pushBlob(repo, cfg), Size: int64(len(cfg))}}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: e.pushBlob(repo, l), Size: int64(len(l))})
	}
	body, err := json.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	if tag == "" {
		tag = digest.FromBytes(body).String()
	}
	d, _, err := e.svc.PutManifest(context.Background(), repo, tag, ocispec.MediaTypeImageManifest, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func importDir(t testing.TB, svc *Service, dir string, skip ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".json") || slices.Contains(skip, ent.Name()) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ImportAdvisories(context.Background(), f, t.TempDir(), 0)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", ent.Name(), err)
		}
	}
}

func findingIDs(r *scan.Report) []string {
	var ids []string
	for _, f := range r.Findings {
		ids = append(ids, f.ID+" "+f.Package+"@"+f.Version)
	}
	slices.Sort(ids)
	return ids
}

const npmOSV = "../scan/testdata/osv/npm"

// TestScanLifecycle: a pushed image is queued, its split layers analyzed
// from their chunks (reading a small part of them), its report served
// with the findings of the layers' union (a whited-out package gives
// none); a feed update is reflected at the next query without reading
// any layer; GC drops what the scan space keeps for deleted blobs.
func TestScanLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newScanEnv(t, true)
	importDir(t, e.svc, npmOSV, "GHSA-pxg6-pf52-xh8x.json") // cookie's advisory comes later
	big := string(randomBytes(t, 12<<20))                   // incompressible: within the inflate ratio
	base := gzipped(t, layerTar(t,
		tarEntry{"etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"},
		tarEntry{"opt/blob.bin", big}, // never read
		tarEntry{"app/node_modules/lodash/package.json", pkgJSON("lodash", "4.17.20")},
		tarEntry{"app/node_modules/minimist/package.json", pkgJSON("minimist", "1.2.5")},
		tarEntry{"app/node_modules/cookie/package.json", pkgJSON("cookie", "0.6.0")},
	), 6)
	top := gzipped(t, layerTar(t, tarEntry{"app/node_modules/.wh.minimist", ""}), 6)
	img := e.pushImage("app", "v1", base, top)

	res, err := e.svc.ScanReport(ctx, "app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != ScanQueued || res.Layers != 2 || res.Analyzed != 0 {
		t.Fatalf("before any analysis: %+v, want queued 0/2", res)
	}
	// Layers pending conversion wait for it; after it they are split.
	if n := e.drainScans(); n != 2 {
		t.Fatalf("drainScans before conversion analyzed %d", n)
	}
	if st, _ := e.svc.ScanStats(ctx); st.LayersAnalyzed != 0 || st.Queued != 2 {
		t.Fatalf("layers pending conversion were read: %+v", st)
	}
	e.drain()
	if n := e.drainScans(); n != 2 {
		t.Fatalf("analyzed %d layers, want 2", n)
	}
	st, _ := e.svc.ScanStats(ctx)
	if st.LayersAnalyzed != 2 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.BytesRead*100 > st.TarBytes || st.StoreBytes*3 > st.TarBytes { // chunks are at most 1 MiB here
		t.Errorf("read %d bytes (%d from storage) of %d: a split layer should be read only where analyzers look", st.BytesRead, st.StoreBytes, st.TarBytes)
	}
	res, err = e.svc.ScanReport(ctx, "app", img.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != ScanDone {
		t.Fatalf("status %q after analysis", res.Status)
	}
	want := []string{"GHSA-29mw-wpgm-hmr9 lodash@4.17.20", "GHSA-35jh-r3h4-6jhm lodash@4.17.20"}
	if got := findingIDs(res.Report); !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
	for _, f := range res.Report.Findings {
		if f.Layer != res.Report.Layers[0] || f.Fixed != "4.17.21" {
			t.Errorf("finding %+v: want layer %s, fixed 4.17.21", f, res.Report.Layers[0])
		}
	}
	gen := res.Report.Feed.Generation

	// A feed update: cookie's advisory arrives. The next query reflects
	// it, names the new feed, and no layer is read again.
	rec, err := os.ReadFile(filepath.Join(npmOSV, "GHSA-pxg6-pf52-xh8x.json"))
	if err != nil {
		t.Fatal(err)
	}
	imp, err := e.svc.ImportAdvisories(ctx, bytes.NewReader(rec), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if imp.Added != 1 || imp.Feed.Generation != gen+1 {
		t.Fatalf("import %+v, want 1 added, generation %d", imp, gen+1)
	}
	res, err = e.svc.ScanReport(ctx, "app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, "GHSA-pxg6-pf52-xh8x cookie@0.6.0")
	slices.Sort(want)
	if got := findingIDs(res.Report); !slices.Equal(got, want) || res.Report.Feed.Generation != gen+1 {
		t.Fatalf("after the import: findings %q (generation %d), want %q (generation %d)", got, res.Report.Feed.Generation, want, gen+1)
	}
	// The record withdrawn: its finding goes.
	var v map[string]any
	json.Unmarshal(rec, &v)
	v["withdrawn"] = "2026-12-01T00:00:00Z"
	v["modified"] = "2026-12-01T00:00:00Z"
	withdrawn, _ := json.Marshal(v)
	if _, err := e.svc.ImportAdvisories(ctx, bytes.NewReader(withdrawn), "", 0); err != nil {
		t.Fatal(err)
	}
	// The re-matcher's work, done here: only this image holds cookie.
	rm, err := e.svc.Rematch(ctx, []scan.PackageKey{{Ecosystem: "npm", Name: "cookie"}}, false)
	if err != nil || rm.Images != 1 || rm.Layers != 1 {
		t.Fatalf("rematch %+v, %v: want 1 image of 1 layer", rm, err)
	}
	cached, ok, err := e.svc.ScanDB().CachedReport(ctx, img.String())
	if err != nil || !ok {
		t.Fatal("no cached report after the re-match", err)
	}
	if got := findingIDs(cached); !slices.Equal(got, want[:2]) || cached.Feed.Generation != gen+2 {
		t.Fatalf("after withdrawal: findings %q (generation %d), want %q", got, cached.Feed.Generation, want[:2])
	}
	if st2, _ := e.svc.ScanStats(ctx); st2.LayersAnalyzed != st.LayersAnalyzed {
		t.Fatalf("feed updates read layers: %d analyzed, was %d", st2.LayersAnalyzed, st.LayersAnalyzed)
	}

	// A second image sharing the base layer analyzes only its own layer.
	other := gzipped(t, layerTar(t, tarEntry{"srv/node_modules/semver/package.json", pkgJSON("semver", "7.5.1")}), 6)
	img2 := e.pushImage("app", "v2", base, other)
	e.drain()
	if n := e.drainScans(); n != 1 {
		t.Fatalf("second image: %d layers analyzed, want 1 (the base is shared)", n)
	}
	res, err = e.svc.ScanReport(ctx, "app", "v2")
	if err != nil || res.Status != ScanDone {
		t.Fatal(res, err)
	}
	if got := findingIDs(res.Report); !slices.Contains(got, "GHSA-c2qf-rxjj-qqgw semver@7.5.1") || !slices.Contains(got, "GHSA-xvch-5gv4-984h minimist@1.2.5") {
		t.Fatalf("second image findings %q: want semver's and minimist's (not whited out there)", got)
	}

	// GC deletes the second image's own layer and manifest: the scan space
	// forgets them; the shared base stays.
	for _, d := range []digest.Digest{img2, digest.FromBytes(other)} {
		b, err := e.graph.Blob(d)
		if err != nil {
			t.Fatal(err)
		}
		e.svc.BlobDeleted(b)
	}
	if _, ok, _ := e.svc.ScanDB().Inventory(ctx, digest.FromBytes(other).String()); ok {
		t.Fatal("inventory of a deleted layer kept")
	}
	if _, ok, _ := e.svc.ScanDB().Image(ctx, img2.String()); ok {
		t.Fatal("record of a deleted image kept")
	}
	if _, ok, _ := e.svc.ScanDB().Inventory(ctx, digest.FromBytes(base).String()); !ok {
		t.Fatal("inventory of the shared layer lost")
	}
}

// TestScanQueueSurvivesRestart: the queue is in the index.
func TestScanQueueSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	e := newScanEnv(t, false)
	l := gzipped(t, layerTar(t, tarEntry{"app/node_modules/lodash/package.json", pkgJSON("lodash", "4.17.20")}), 6)
	e.pushImage("app", "v1", l)
	e.close()
	e.open()
	res, err := e.svc.ScanReport(ctx, "app", "v1")
	if err != nil || res.Status != ScanQueued {
		t.Fatalf("after restart: %+v, %v; want queued", res, err)
	}
	if n := e.drainScans(); n != 1 {
		t.Fatalf("analyzed %d layers after restart, want 1", n)
	}
	// Opaque (conversion off): read as a tar stream, every byte.
	st, _ := e.svc.ScanStats(ctx)
	if st.StoreBytes != st.TarBytes || st.TarBytes == 0 {
		t.Fatalf("opaque layer stats %+v: want the whole stream read", st)
	}
	res, err = e.svc.ScanReport(ctx, "app", "v1")
	if err != nil || res.Status != ScanDone || len(res.Report.Packages) != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
}

// TestScanBadLayers: a corrupt gzip stream, a tar that lies about a
// size, and a package.json past the analyzers' cap end up as notes in
// the report; the analyses succeed and nothing is retried.
func TestScanBadLayers(t *testing.T) {
	ctx := context.Background()
	e := newScanEnv(t, false)
	e.close()
	e.scan.MaxFileSize = 1 << 20
	e.open()
	good := layerTar(t, tarEntry{"app/node_modules/lodash/package.json", pkgJSON("lodash", "4.17.20")},
		tarEntry{"app/node_modules/cookie/package.json", pkgJSON("cookie", "0.6.0")})
	corrupt := gzipped(t, good, 6)
	corrupt[len(corrupt)/2] ^= 0xff
	corrupt[len(corrupt)/2+1] ^= 0xff
	lying := layerTar(t, tarEntry{"app/node_modules/lodash/package.json", pkgJSON("lodash", "4.17.20")}, tarEntry{"etc/os-release", strings.Repeat("x", 4096)})
	lying = lying[:1024+512+100] // the second entry's body cut short
	huge := layerTar(t, tarEntry{"app/node_modules/huge/package.json", `{"name":"huge","version":"1.0.0","x":"` + strings.Repeat("y", 2<<20) + `"}`})
	notTar := []byte("plain text: neither gzip, zstd nor tar")
	img := e.pushImage("bad", "v1", corrupt, gzipped(t, lying, 6), huge, notTar)
	if n := e.drainScans(); n != 4 {
		t.Fatalf("analyzed %d layers, want 4", n)
	}
	res, err := e.svc.ScanReport(ctx, "bad", img.String())
	if err != nil || res.Status != ScanDone {
		t.Fatal(res, err)
	}
	r := res.Report
	if !r.Incomplete {
		t.Error("report of broken layers not marked incomplete")
	}
	var notes []string
	for _, n := range r.Notes {
		notes = append(notes, n.Layer+" "+n.Path+": "+n.Message)
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{"layer not read to its end", "huge/package.json: skipped", "layer not read: not a reproducible layer", "os-release: unexpected EOF"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no note saying %q in:\n%s", want, joined)
		}
	}
	for _, p := range r.Packages {
		if p.Name == "huge" {
			t.Error("package.json over the cap was parsed")
		}
	}
	if _, ok, _ := e.svc.ScanDB().AbandonedLayer(ctx, digest.FromBytes(notTar).String()); ok {
		t.Error("a layer that is not a tar was retried and given up on instead of noted")
	}
}

// TestScanIndex: an index's report has one report per platform image.
func TestScanIndex(t *testing.T) {
	ctx := context.Background()
	e := newScanEnv(t, false)
	amd := e.pushImage("multi", "", gzipped(t, layerTar(t, tarEntry{"a/node_modules/lodash/package.json", pkgJSON("lodash", "4.17.20")}), 6))
	arm := e.pushImage("multi", "", gzipped(t, layerTar(t, tarEntry{"a/node_modules/lodash/package.json", pkgJSON("lodash", "4.17.21")}), 6))
	importDir(t, e.svc, npmOSV)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, m := range []struct {
		d    digest.Digest
		arch string
	}{{amd, "amd64"}, {arm, "arm64"}} {
		mf, err := e.svc.StatManifest(ctx, "multi", m.d.String())
		if err != nil {
			t.Fatal(err)
		}
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: mf.MediaType, Digest: m.d, Size: mf.Size,
			Platform: &ocispec.Platform{OS: "linux", Architecture: m.arch}})
	}
	body, _ := json.Marshal(idx)
	if _, _, err := e.svc.PutManifest(ctx, "multi", "v1", ocispec.MediaTypeImageIndex, body); err != nil {
		t.Fatal(err)
	}
	if res, err := e.svc.ScanReport(ctx, "multi", "v1"); err != nil || res.Status != ScanQueued || res.Layers != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
	e.drainScans()
	res, err := e.svc.ScanReport(ctx, "multi", "v1")
	if err != nil || res.Status != ScanDone {
		t.Fatal(res, err)
	}
	if len(res.Index.Reports) != 2 {
		t.Fatalf("%d reports", len(res.Index.Reports))
	}
	for _, r := range res.Index.Reports {
		n := len(r.Findings)
		if r.Platform == "linux/amd64" && n != 2 || r.Platform == "linux/arm64" && n != 0 {
			t.Errorf("%s: %d findings %q", r.Platform, n, findingIDs(&r))
		}
	}
	// Not an image: 404.
	if _, err := e.svc.ScanReport(ctx, "multi", "nope"); err == nil {
		t.Error("unknown tag answered")
	}
}
