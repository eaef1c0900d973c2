package scan

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/restic/chunker"
)

// benchImages builds cached inventories of n images sharing base layers:
// 10 OS base layers (200 dpkg packages each), 100 application layers
// (a Go binary of 60 modules named in the Go vulnerability database,
// 150 npm and 30 Python packages, some named by advisories), image i =
// base i%10 + app i%100.
func benchImages(db *DB, n int) [][]LayerInventory {
	r := rand.New(rand.NewPCG(1, 2))
	var goMods []string
	seen := map[string]bool{}
	db.kv.Scan(context.Background(), []byte(keyIndex+"Go\x00"), func(k, _ []byte) error {
		name, _, _ := strings.Cut(string(k[len(keyIndex+"Go\x00"):]), "\x00")
		if !seen[name] && name != "stdlib" && name != "toolchain" {
			seen[name] = true
			goMods = append(goMods, name)
		}
		return nil
	})
	sort.Strings(goMods)
	npmNamed := []string{"lodash", "express", "qs", "minimist", "semver", "cookie", "path-to-regexp", "send", "body-parser", "serve-static"}
	pyNamed := []string{"urllib3", "requests", "Jinja2", "idna", "certifi"}
	ver := func() string { return fmt.Sprintf("%d.%d.%d", r.IntN(3), r.IntN(20), r.IntN(20)) }
	var bases, apps []*Inventory
	for b := range 10 {
		inv := &Inventory{AnalyzerVersion: AnalyzerVersion}
		for i := range 200 {
			name := fmt.Sprintf("lib%d-%d", b, i)
			inv.Packages = append(inv.Packages, Package{Name: name, Version: "1.2.3-1", Ecosystem: "Debian", Manager: "dpkg",
				Source: name, SourceVersion: "1.2.3-1", Path: "var/lib/dpkg/status"})
		}
		inv.OS = &OSRelease{ID: "debian", VersionID: "12", Path: "etc/os-release"}
		bases = append(bases, inv)
	}
	for a := range 100 {
		inv := &Inventory{AnalyzerVersion: AnalyzerVersion}
		bin := fmt.Sprintf("usr/local/bin/app%d", a)
		inv.Packages = append(inv.Packages, Package{Name: "stdlib", Version: fmt.Sprintf("1.%d.%d", 18+r.IntN(8), r.IntN(10)), Ecosystem: "Go", Manager: "go-binary", Path: bin})
		for range 60 {
			inv.Packages = append(inv.Packages, Package{Name: goMods[r.IntN(len(goMods))], Version: ver(), Ecosystem: "Go", Manager: "go-binary", Path: bin})
		}
		for i := range 150 {
			name := fmt.Sprintf("npm-filler-%d", r.IntN(2000))
			if i < 10 {
				name = npmNamed[i]
			}
			inv.Packages = append(inv.Packages, Package{Name: name, Version: ver(), Ecosystem: "npm", Manager: "npm",
				Path: "app/node_modules/" + name + "/package.json"})
		}
		for i := range 30 {
			name := fmt.Sprintf("py-filler-%d", r.IntN(500))
			if i < len(pyNamed) {
				name = pyNamed[i]
			}
			inv.Packages = append(inv.Packages, Package{Name: name, Version: ver(), Ecosystem: "PyPI", Manager: "python",
				Path: "usr/lib/python3/dist-packages/" + name + ".dist-info/METADATA"})
		}
		apps = append(apps, inv)
	}
	images := make([][]LayerInventory, n)
	for i := range images {
		images[i] = []LayerInventory{
			{Digest: "sha256:base" + strconv.Itoa(i%10), Inventory: bases[i%10]},
			{Digest: "sha256:app" + strconv.Itoa(i%100), Inventory: apps[i%100]},
		}
	}
	return images
}

// BenchmarkRematch measures re-matching cached inventories against the
// whole Go vulnerability database plus the npm and PyPI test records,
// as a feed update does: per image with a fresh Matcher ("cold"), with
// one Matcher across images sharing packages ("shared"), and, as the
// baseline, matching each package against every advisory ("scan-all",
// what the (ecosystem, name) index avoids).
func BenchmarkRematch(b *testing.B) {
	ctx := context.Background()
	db := memDB(b)
	if _, err := db.Import(ctx, vulndbDir(b)); err != nil {
		b.Fatal(err)
	}
	for _, eco := range []string{"npm", "PyPI"} {
		if _, err := db.Import(ctx, filepath.Join("testdata", "osv", eco, "all.zip")); err != nil {
			b.Fatal(err)
		}
	}
	images := benchImages(db, 1000)
	pkgsPer := len(Union(images[0]).Packages)
	b.Run("cold", func(b *testing.B) {
		n := 0
		for b.Loop() {
			img := Union(images[n%len(images)])
			if _, _, err := db.NewMatcher().Match(ctx, img); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
		b.ReportMetric(float64(n*pkgsPer)/b.Elapsed().Seconds(), "packages/s")
	})
	b.Run("shared", func(b *testing.B) {
		// Warm: every distinct layer pair matched once (not timed); what
		// follows is the cost of an image whose packages were seen.
		m := db.NewMatcher()
		for _, img := range images[:100] {
			if _, _, err := m.Match(ctx, Union(img)); err != nil {
				b.Fatal(err)
			}
		}
		n := 0
		for b.Loop() {
			img := Union(images[n%len(images)])
			if _, _, err := m.Match(ctx, img); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
		b.ReportMetric(float64(n*pkgsPer)/b.Elapsed().Seconds(), "packages/s")
	})
	b.Run("scan-all", func(b *testing.B) {
		// Every advisory, loaded once; each package evaluated against
		// every affected entry of its ecosystem with its name.
		var all []*advisory
		db.kv.Scan(ctx, []byte(keyAdvisory), func(k, _ []byte) error {
			a, err := db.advisory(string(k[len(keyAdvisory):]))
			if err == nil && a != nil && !a.Withdrawn {
				all = append(all, a)
			}
			return nil
		})
		n := 0
		for b.Loop() {
			img := Union(images[n%len(images)])
			for _, p := range img.Packages {
				for _, a := range all {
					for i := range a.Affected {
						af := &a.Affected[i]
						if k := advisoryKey(af.Package); k.Ecosystem == p.Ecosystem && k.Name == lookupName(&p) {
							af.Evaluate(p.Ecosystem, p.Version)
						}
					}
				}
			}
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
	})
}

// BenchmarkSplitLayerRead builds a synthetic layer (1 GiB by default;
// CHUNKYARD_BENCH_LAYER_MB sets it) shaped like a fat application image:
// a real dpkg status and os-release, npm and Python metadata, real
// non-Go ELF executables (some padded to 64 MiB), one Go binary, thousands
// of small documents and large data files. It reports the bytes the split
// view reads against the layer's uncompressed size, and its time against
// the tar view's over the same tar (the baseline: what an opaque layer
// costs).
func BenchmarkSplitLayerRead(b *testing.B) {
	size := int64(1024)
	if s := os.Getenv("CHUNKYARD_BENCH_LAYER_MB"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = v
	}
	dir := b.TempDir()
	tarPath := filepath.Join(dir, "layer.tar")
	writeBenchLayer(b, tarPath, size<<20)
	hPath, cPath := filepath.Join(dir, "headers"), filepath.Join(dir, "content")
	splitFiles(b, tarPath, hPath, cPath)
	ctx := context.Background()
	var inv *Inventory
	b.Run("split", func(b *testing.B) {
		for b.Loop() {
			h, _ := os.Open(hPath)
			c, _ := os.Open(cPath)
			var err error
			inv, err = Analyze(ctx, &SplitLayer{Headers: bufio.NewReaderSize(h, 1<<20), Content: c}, Options{})
			h.Close()
			c.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		read := inv.Stats.ContentRead + inv.Stats.HeaderBytes
		b.ReportMetric(float64(read)/float64(inv.Stats.Uncompressed)*100, "%read")
		// The same analysis over the content stream cut into chunks as the
		// store cuts it (256 KiB average): reads fetch whole chunks, as
		// assembler.ChunkReaderAt does, keeping the last 4.
		c, _ := os.Open(cPath)
		defer c.Close()
		ca := &chunkAccounting{r: c, ends: chunkEnds(b, cPath)}
		h, _ := os.Open(hPath)
		defer h.Close()
		cinv, err := Analyze(ctx, &SplitLayer{Headers: bufio.NewReaderSize(h, 1<<20), Content: ca}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cinv.Stats.StoreRead+cinv.Stats.HeaderBytes)/float64(cinv.Stats.Uncompressed)*100, "%chunks-read")
		b.ReportMetric(float64(read)/(1<<20), "MiB-read")
		b.ReportMetric(float64(inv.Stats.Uncompressed)/(1<<20), "MiB-layer")
		b.ReportMetric(float64(len(inv.Packages)), "packages")
	})
	b.Run("tar", func(b *testing.B) {
		var tinv *Inventory
		for b.Loop() {
			f, _ := os.Open(tarPath)
			var err error
			tinv, err = Analyze(ctx, &TarLayer{R: f, TempDir: b.TempDir()}, Options{})
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		if len(tinv.Packages) != len(inv.Packages) {
			b.Fatalf("tar view found %d packages, split view %d", len(tinv.Packages), len(inv.Packages))
		}
		b.ReportMetric(float64(tinv.Stats.Uncompressed)/(1<<20), "MiB-read")
	})
}

func splitFiles(b *testing.B, tarPath, hPath, cPath string) {
	in, err := os.Open(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	h, _ := os.Create(hPath)
	c, _ := os.Create(cPath)
	if _, err := tarsplit.Split(bufio.NewReaderSize(in, 1<<20), h, c); err != nil {
		b.Fatal(err)
	}
	if err := h.Close(); err != nil {
		b.Fatal(err)
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
}

// writeBenchLayer streams a layer of about size bytes to path.
func writeBenchLayer(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countWriter{w: bw}
	tw := tar.NewWriter(cw)
	mtime := time.Unix(1700000000, 0)
	add := func(name string, mode int64, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: mtime}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			b.Fatal(err)
		}
	}
	addStream := func(name string, mode int64, n int64, r io.Reader) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: n, ModTime: mtime}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(tw, r, n); err != nil {
			b.Fatal(err)
		}
	}
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	add("usr/lib/os-release", 0o644, read(filepath.Join("testdata", "images", "debian-base", "usr", "lib", "os-release")))
	add("var/lib/dpkg/status", 0o644, read(filepath.Join("testdata", "images", "debian-python", "var", "lib", "dpkg", "status")))
	pj := read(filepath.Join("testdata", "images", "npm-app", "app", "node_modules", "express", "package.json"))
	for i := range 500 {
		add(fmt.Sprintf("app/node_modules/pkg%d/package.json", i), 0o644, bytes.Replace(pj, []byte(`"name": "express"`), []byte(fmt.Sprintf(`"name": "pkg%d"`, i)), 1))
		add(fmt.Sprintf("app/node_modules/pkg%d/index.js", i), 0o644, bytes.Repeat([]byte("module.exports = 1;\n"), 200))
	}
	md := read(filepath.Join("testdata", "images", "debian-python", "usr", "lib", "python3", "dist-packages", "packaging-23.0.dist-info", "METADATA"))
	for i := range 100 {
		add(fmt.Sprintf("usr/lib/python3/dist-packages/mod%d-1.0.dist-info/METADATA", i), 0o644, bytes.Replace(md, []byte("Name: packaging"), []byte(fmt.Sprintf("Name: mod%d", i)), 1))
	}
	// Real non-Go executables from this machine.
	var elfs [][]byte
	ents, _ := os.ReadDir("/usr/bin")
	for _, e := range ents {
		if len(elfs) >= 300 {
			break
		}
		data, err := os.ReadFile(filepath.Join("/usr/bin", e.Name()))
		if err != nil || !bytes.HasPrefix(data, []byte("\x7fELF")) {
			continue
		}
		if ef, err := elf.NewFile(bytes.NewReader(data)); err != nil || ef.Section(".go.buildinfo") != nil {
			continue
		}
		elfs = append(elfs, data)
		add("usr/bin/"+e.Name(), 0o755, data)
	}
	if len(elfs) == 0 {
		b.Fatal("no ELF executables in /usr/bin to build the layer from")
	}
	exe, _ := os.Executable()
	add("usr/local/bin/gobinary", 0o755, read(exe))
	rnd := rand.NewChaCha8([32]byte{1})
	// Large non-Go binaries: a real ELF, padded to 64 MiB.
	for i := 0; i < 6 && cw.n < size/2; i++ {
		head := elfs[i%len(elfs)]
		addStream(fmt.Sprintf("opt/vendor/lib/libbig%d.so", i), 0o755, 64<<20, io.MultiReader(bytes.NewReader(head), rnd))
	}
	// Small documents.
	for i := 0; i < 5000; i++ {
		add(fmt.Sprintf("usr/share/doc/pkg%d/copyright", i), 0o644, bytes.Repeat([]byte("Permission is hereby granted, free of charge. "), 40))
	}
	// Data files up to the size.
	for i := 0; cw.n < size-(8<<20); i++ {
		n := min(int64(32<<20), size-(8<<20)-cw.n)
		addStream(fmt.Sprintf("usr/share/data/blob%d.bin", i), 0o644, n, rnd)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// chunkEnds cuts a file as the chunk store does (restic chunker, 128 KiB
// min, 256 KiB average, 2 MiB max) and returns the chunks' end offsets.
func chunkEnds(b *testing.B, path string) []int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ch := chunker.NewWithBoundaries(bufio.NewReaderSize(f, 1<<20), chunker.Pol(0x3DA3358B4DC173), 128<<10, 2<<20)
	ch.SetAverageBits(18)
	buf := make([]byte, 2<<20)
	var ends []int64
	var pos int64
	for {
		c, err := ch.Next(buf)
		if err == io.EOF {
			return ends
		}
		if err != nil {
			b.Fatal(err)
		}
		pos += int64(c.Length)
		ends = append(ends, pos)
	}
}

// chunkAccounting is a content ReaderAt that counts whole chunks fetched,
// keeping the last 4 as assembler.ChunkReaderAt does.
type chunkAccounting struct {
	r       io.ReaderAt
	ends    []int64
	recent  []int
	fetched int64
}

func (c *chunkAccounting) StoreBytesRead() int64 { return c.fetched }

func (c *chunkAccounting) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > 0 {
		first := sort.Search(len(c.ends), func(i int) bool { return c.ends[i] > off })
		last := sort.Search(len(c.ends), func(i int) bool { return c.ends[i] > off+int64(len(p))-1 })
		for i := first; i <= last && i < len(c.ends); i++ {
			hit := false
			for _, k := range c.recent {
				hit = hit || k == i
			}
			if !hit {
				start := int64(0)
				if i > 0 {
					start = c.ends[i-1]
				}
				c.fetched += c.ends[i] - start
				c.recent = append(c.recent, i)
				if len(c.recent) > 4 {
					c.recent = c.recent[1:]
				}
			}
		}
	}
	return c.r.ReadAt(p, off)
}

// BenchmarkRootfsRead is BenchmarkSplitLayerRead over a real root file
// system: the host directories CHUNKYARD_BENCH_ROOTFS lists (relative to
// /, space-separated, e.g. "usr/bin usr/sbin usr/lib var/lib/dpkg etc"),
// as one layer. Skipped without it: the result depends on the host.
func BenchmarkRootfsRead(b *testing.B) {
	dirs := strings.Fields(os.Getenv("CHUNKYARD_BENCH_ROOTFS"))
	if len(dirs) == 0 {
		b.Skip("set CHUNKYARD_BENCH_ROOTFS to host directories to tar")
	}
	dir := b.TempDir()
	tarPath := filepath.Join(dir, "layer.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	for _, d := range dirs {
		filepath.Walk(filepath.Join("/", d), func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			var link string
			if fi.Mode()&os.ModeSymlink != 0 {
				link, _ = os.Readlink(p)
			} else if !fi.Mode().IsRegular() && !fi.IsDir() {
				return nil
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return nil
			}
			h.Name = strings.TrimPrefix(p, "/")
			if fi.Mode().IsRegular() {
				src, err := os.Open(p)
				if err != nil {
					return nil
				}
				defer src.Close()
				if err := tw.WriteHeader(h); err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyN(tw, src, h.Size); err != nil {
					b.Fatal(err)
				}
				return nil
			}
			if err := tw.WriteHeader(h); err != nil {
				b.Fatal(err)
			}
			return nil
		})
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	bw.Flush()
	f.Close()
	hPath, cPath := filepath.Join(dir, "headers"), filepath.Join(dir, "content")
	splitFiles(b, tarPath, hPath, cPath)
	ends := chunkEnds(b, cPath)
	ctx := context.Background()
	var inv *Inventory
	for b.Loop() {
		h, _ := os.Open(hPath)
		c, _ := os.Open(cPath)
		ca := &chunkAccounting{r: c, ends: ends}
		inv, err = Analyze(ctx, &SplitLayer{Headers: bufio.NewReaderSize(h, 1<<20), Content: ca}, Options{})
		h.Close()
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	u := float64(inv.Stats.Uncompressed)
	b.ReportMetric(float64(inv.Stats.ContentRead+inv.Stats.HeaderBytes)/u*100, "%read")
	b.ReportMetric(float64(inv.Stats.StoreRead+inv.Stats.HeaderBytes)/u*100, "%chunks-read")
	b.ReportMetric(u/(1<<20), "MiB-layer")
	b.ReportMetric(float64(inv.Stats.FilesRead), "files-read")
	b.ReportMetric(float64(len(inv.Packages)), "packages")
}
