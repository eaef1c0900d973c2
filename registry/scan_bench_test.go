package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/scan"
)

// BenchmarkScanSharedImages pushes images that share base layers (10
// Debian-like bases of 300 dpkg packages, 10 npm layers of 40 packages
// each used by a tenth of the images, and one layer of its own per
// image), converts and scans them, then matches them all again after a
// feed update. It reports the layers analyzed against the layers the
// images reference (each unique layer must be analyzed once), the
// analysis and re-match throughputs, and bytes read against the layers'
// uncompressed size. CHUNKYARD_SCAN_IMAGES sets the image count
// (default 1000).
func BenchmarkScanSharedImages(b *testing.B) {
	images := 1000
	if v, err := strconv.Atoi(os.Getenv("CHUNKYARD_SCAN_IMAGES")); err == nil && v > 0 {
		images = v
	}
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		e := newScanEnv(b, true)
		var bases, mids [][]byte
		for i := range 10 {
			var status strings.Builder
			for p := range 300 {
				fmt.Fprintf(&status, "Package: pkg%d-%d\nStatus: install ok installed\nVersion: 1.%d-%d\nSource: src%d\nDescription: x\n\n", i, p, p, i, p/3)
			}
			filler := make([]byte, 256<<10)
			rand.Read(filler)
			bases = append(bases, gzipped(b, layerTar(b, tarEntry{"etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"},
				tarEntry{"var/lib/dpkg/status", status.String()}, tarEntry{"usr/share/filler", string(filler)}), 6))
			var es []tarEntry
			for p := range 40 {
				name := fmt.Sprintf("npm%d", p)
				if p == 0 {
					name = "lodash"
				}
				es = append(es, tarEntry{fmt.Sprintf("srv%d/node_modules/%s/package.json", i, name), pkgJSON(name, fmt.Sprintf("4.17.%d", 10+i))})
			}
			mids = append(mids, gzipped(b, layerTar(b, es...), 6))
		}
		importDir(b, e.svc, npmOSV)
		unique := append(append([][]byte{}, bases...), mids...)
		start := time.Now()
		for i := range images {
			own := gzipped(b, layerTar(b, tarEntry{fmt.Sprintf("app/node_modules/app%d/package.json", i), pkgJSON(fmt.Sprintf("app%d", i), "1.0.0")},
				tarEntry{"app/main.js", fmt.Sprintf("console.log(%d)\n", i)}), 6)
			e.pushImage("bench/app", fmt.Sprintf("v%d", i), bases[i%10], mids[(i/10)%10], own)
			unique = append(unique, own)
		}
		push := time.Since(start)
		start = time.Now()
		e.drain()
		convert := time.Since(start)
		b.StartTimer()
		start = time.Now()
		analyzed := e.drainScans()
		analysis := time.Since(start)
		st, _ := e.svc.ScanStats(ctx)
		// Every image's report (the first query of each).
		start = time.Now()
		findings := 0
		for i := range images {
			res, err := e.svc.ScanReport(ctx, "bench/app", fmt.Sprintf("v%d", i))
			if err != nil || res.Status != ScanDone {
				b.Fatal(res, err)
			}
			findings += len(res.Report.Findings)
		}
		report := time.Since(start)
		// A feed update naming a package every image holds (lodash): all
		// are matched again, from their inventories.
		start = time.Now()
		rm, err := e.svc.Rematch(ctx, []scan.PackageKey{{Ecosystem: "npm", Name: "lodash"}}, false)
		if err != nil {
			b.Fatal(err)
		}
		rematch := time.Since(start)
		b.StopTimer()
		// The baseline, in the same run: what a scanner that reads every
		// layer does at least, decompress each unique layer once.
		start = time.Now()
		for _, l := range unique {
			zr, err := gzip.NewReader(bytes.NewReader(l))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, zr)
		}
		gunzip := time.Since(start)
		nUnique := images + min(10, images) + min(10, (images+9)/10)
		if st.LayersAnalyzed != int64(nUnique) {
			b.Fatalf("analyzed %d layers for %d images of %d unique layers", st.LayersAnalyzed, images, nUnique)
		}
		if rm.Images != images {
			b.Fatalf("re-matched %d images, want %d", rm.Images, images)
		}
		b.ReportMetric(float64(3*images), "layers_referenced")
		b.ReportMetric(float64(st.LayersAnalyzed), "layers_analyzed")
		b.ReportMetric(float64(analyzed), "queue_entries")
		b.ReportMetric(float64(st.LayersAnalyzed)/analysis.Seconds(), "layers_analyzed/s")
		b.ReportMetric(float64(images)/report.Seconds(), "first_reports/s")
		b.ReportMetric(float64(rm.Images)/rematch.Seconds(), "rematches/s")
		b.ReportMetric(100*float64(st.BytesRead)/float64(st.TarBytes), "%read")
		b.ReportMetric(float64(findings)/float64(images), "findings/image")
		b.ReportMetric(analysis.Seconds()/gunzip.Seconds(), "analysis/gunzip")
		b.ReportMetric(rematch.Seconds()/gunzip.Seconds(), "rematch/gunzip")
		b.Logf("%d images: push %s, convert %s, analyze %d layers in %s, first reports %s, re-match of %d images in %s; read %d of %d bytes (%d fetched); baseline: gunzip of the unique layers %s",
			images, push.Round(time.Millisecond), convert.Round(time.Millisecond), st.LayersAnalyzed, analysis.Round(time.Millisecond),
			report.Round(time.Millisecond), rm.Images, rematch.Round(time.Millisecond), st.BytesRead, st.TarBytes, st.StoreBytes,
			gunzip.Round(time.Millisecond))
		b.StartTimer()
	}
}
