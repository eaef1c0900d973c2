package main

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/bench/benchtest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestBenchReplication measures replication (bench/replication.md): a
// node a replicating to b (local disk) and c (S3 on versitygw, when
// CHUNKYARD_TOOLS has it; else local disk), each link through a proxy at
// 50 MB/s and 40 ms RTT; near-duplicate rebuilds of a two-layer image
// pushed to a. It reports, per push, the time from push acknowledged to
// the tag resolving on each peer (p50, p99, max), and the bytes over the
// links against the sum of the new blobs' sizes (what whole-blob
// replication ships). Runs only with CHUNKYARD_BENCH_REPL set: N, the
// number of synthetic rebuilds, or the directory scripts/corpus/build
// wrote (DIR/ENC/rN OCI layouts: every image of every encoding, in that
// order; CHUNKYARD_BENCH_REPL_ENCODERS and _REBUILDS narrow it).
func TestBenchReplication(t *testing.T) {
	images := benchImages(t, os.Getenv("CHUNKYARD_BENCH_REPL"))
	if images == nil {
		t.Skip("set CHUNKYARD_BENCH_REPL=rebuilds or =CORPUS_DIR to run")
	}
	bin := chunkyardBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gc.toml")
	os.WriteFile(cfg, []byte("interval = \"1h\"\n"), 0o644)
	mk := func(name string) *node {
		return &node{name: name, data: filepath.Join(dir, name, "data"), cfg: cfg, addr: freeAddr(t)}
	}
	a, b, c, d := mk("a"), mk("b"), mk("c"), mk("d")
	storage := "fs"
	if gw := versitygw(); gw != "" {
		port := freePort(t)
		cmd := exec.Command("bash", "../../scripts/s3-server", port, filepath.Join(dir, "s3"))
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(gw)+":"+os.Getenv("PATH"))
		var out logBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitFor(t, "s3-server", 30*time.Second, func() bool { return strings.Contains(out.String(), "ready") })
		t.Setenv("AWS_ACCESS_KEY_ID", "chunkyard")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "chunkyard-secret")
		t.Setenv("AWS_REGION", "us-east-1")
		c.args = []string{"--storage", "s3", "--s3-bucket", "chunkyard", "--s3-prefix", "c", "--s3-endpoint", "http://127.0.0.1:" + port}
		storage = "s3 (versitygw)"
	}
	ab, ac, ad := newLinkProxy(t, b.addr), newLinkProxy(t, c.addr), newLinkProxy(t, d.addr)
	for _, p := range []*linkProxy{ab, ac, ad} {
		p.rate, p.halfRTT = 50e6, 20*time.Millisecond
	}
	a.args = []string{"--peer", ab.srv.URL, "--peer", ac.srv.URL}
	for _, nd := range []*node{a, b, c, d} {
		nd.start(t, bin)
		t.Cleanup(func() {
			if nd.srv.cmd.ProcessState == nil {
				nd.srv.kill(t)
			}
		})
	}

	seen := map[string]bool{}
	var whole int64
	var lags, baseLags []time.Duration
	var baseBytes int64
	var pushed []benchImage // the last image of each repository
	n := 0
	for bi := range images {
		n++
		img, ref := bi.img, bi.ref
		if k := len(pushed) - 1; k >= 0 && repoOf(pushed[k].ref) == repoOf(ref) {
			pushed[k] = bi
		} else {
			pushed = append(pushed, bi)
		}
		whole += newBytes(t, img, seen)
		pushTo(t, img, a, ref)
		acked := time.Now()
		want, _ := img.Digest()
		for _, peer := range []*node{b, c} {
			waitFor(t, ref+" on "+peer.name, 120*time.Second, func() bool {
				d, err := remote.Head(refOn(t, peer, ref))
				return err == nil && d.Digest == want
			})
			lags = append(lags, time.Since(acked))
		}
		// Baseline, once replication is done: copy the image whole-blob
		// from a to d (a node that takes no part in replication) over a
		// link of the same shape (go-containerregistry, as crane copy
		// does: blobs d's repository has are skipped).
		src, err := remote.Image(refOn(t, a, ref))
		if err != nil {
			t.Fatal(err)
		}
		before := ad.bytes.Load()
		start := time.Now()
		dst, err := name.ParseReference(strings.TrimPrefix(ad.srv.URL, "http://")+"/baseline/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dst, src); err != nil {
			t.Fatal(err)
		}
		baseLags = append(baseLags, time.Since(start))
		baseBytes += ad.bytes.Load() - before
	}
	// Every image's manifest resolved on both peers above, and a peer
	// indexes a blob only after checking its digest; the last image of
	// each repository is also pulled whole, byte for byte.
	for _, bi := range pushed {
		for _, peer := range []*node{b, c} {
			sameImage(t, peer, bi.ref, bi.img)
		}
	}
	st := a.status(t)
	slices.Sort(lags)
	pct := func(p float64) time.Duration { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	wire := ab.bytes.Load() + ac.bytes.Load()
	t.Logf("storage of c: %s; %d images, 2 peers, %d samples", storage, n, len(lags))
	t.Logf("push-acknowledged to pullable on the peer: p50 %s, p99 %s, max %s",
		pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
	t.Logf("bytes over the two links %d (%.1f MB); whole-blob replication %d per link, %d for both (%.1f MB); ratio %.2fx",
		wire, float64(wire)/1e6, whole, 2*whole, float64(2*whole)/1e6, float64(2*whole)/float64(wire))
	slices.Sort(baseLags)
	var took []time.Duration
	for _, l := range strings.Split(a.srv.log.String(), "\n") {
		if i := strings.Index(l, " took="); i > 0 && strings.Contains(l, "msg=replicated") {
			if v, err := time.ParseDuration(strings.Fields(l[i+6:])[0]); err == nil {
				took = append(took, v)
			}
		}
	}
	slices.Sort(took)
	if len(took) > 0 {
		t.Logf("of which the transfer (sender's first request to the manifest applied; the rest is waiting for a's converter): p50 %s, max %s",
			took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	}
	t.Logf("baseline, whole-blob copy a->d over a link of the same shape after each push (crane copy's way): p50 %s, max %s, %d bytes over the link (%.2fx the chunk-level bytes to b)",
		baseLags[len(baseLags)/2].Round(time.Millisecond), baseLags[len(baseLags)-1].Round(time.Millisecond), baseBytes,
		float64(baseBytes)/float64(st[0].BytesSent+st[0].BytesReceived))
	for _, s := range st {
		t.Logf("sender stats %s: images %d, chunks %d, sent %d, received %d, whole-blob %d, errors %d",
			s.Peer, s.Images, s.ChunksSent, s.BytesSent, s.BytesReceived, s.WholeBlobBytes, s.Errors)
	}
	if os.Getenv("CHUNKYARD_BENCH_LOGS") != "" {
		for _, nd := range []*node{a, b, c, d} {
			t.Logf("log of %s:\n%s", nd.name, nd.srv.log.String())
		}
	}
	a.srv.stop(t)
	out, err := exec.Command(bin, "stats", "--data", a.data).CombinedOutput()
	if err != nil {
		t.Fatalf("stats: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "dedup ratio") || strings.HasPrefix(l, "logical bytes") || strings.HasPrefix(l, "stored bytes") || strings.HasPrefix(l, "replication") {
			t.Logf("a's stats: %s", l)
		}
	}
}

// benchImage is an image the replication benchmark pushes, and its tag.
type benchImage struct {
	ref string
	img v1.Image
}

func repoOf(ref string) string { return ref[:strings.LastIndex(ref, ":")] }

// benchImages yields the benchmark's images as spec says (see
// TestBenchReplication), nil if it says none.
func benchImages(t *testing.T, spec string) iter.Seq[benchImage] {
	if st, err := os.Stat(spec); err == nil && st.IsDir() {
		return corpusImages(t, spec)
	}
	n, _ := strconv.Atoi(spec)
	if n <= 0 {
		return nil
	}
	return func(yield func(benchImage) bool) {
		// A base layer (a rootfs-like tree) and an app layer; each
		// rebuild changes a few files of each and sets new mtimes.
		base := benchtest.Files(1, 1200, 20<<10) // 24 MiB
		app := benchtest.Files(2, 200, 20<<10)   // 4 MiB
		rnd := rand.New(rand.NewPCG(7, 7))
		t0 := time.Unix(1_700_000_000, 0)
		for i := range n {
			for range 3 {
				j := rnd.IntN(len(base))
				base[j].Data = benchtest.Files(uint64(100+i*10+j), 1, len(base[j].Data))[0].Data
			}
			j := rnd.IntN(len(app))
			app[j].Data = benchtest.Files(uint64(5000+i), 1, len(app[j].Data))[0].Data
			mtime := t0.Add(time.Duration(i) * time.Hour)
			img, err := mutate.AppendLayers(empty.Image,
				static.NewLayer(benchtest.Gzip(t, benchtest.Tar(t, base, mtime), 6), types.OCILayer),
				static.NewLayer(benchtest.Gzip(t, benchtest.Tar(t, app, mtime), 6), types.OCILayer))
			if err != nil {
				t.Fatal(err)
			}
			if !yield(benchImage{fmt.Sprintf("corpus/app:r%d", i), img}) {
				return
			}
		}
	}
}

// corpusImages yields the images of the OCI layouts scripts/corpus/build
// wrote under dir (dir/ENC/rN), encoding by encoding, rebuilds in order,
// tagged corpus/ENC:rN.
func corpusImages(t *testing.T, dir string) iter.Seq[benchImage] {
	encs := strings.Fields(os.Getenv("CHUNKYARD_BENCH_REPL_ENCODERS"))
	if len(encs) == 0 {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				encs = append(encs, e.Name())
			}
		}
	}
	rebuilds, _ := strconv.Atoi(os.Getenv("CHUNKYARD_BENCH_REPL_REBUILDS"))
	return func(yield func(benchImage) bool) {
		for _, enc := range encs {
			ents, err := os.ReadDir(filepath.Join(dir, enc))
			if err != nil {
				t.Fatal(err)
			}
			var nums []int
			for _, e := range ents {
				if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "r")); err == nil && strings.HasPrefix(e.Name(), "r") {
					nums = append(nums, n)
				}
			}
			slices.Sort(nums)
			if rebuilds > 0 && len(nums) > rebuilds {
				nums = nums[:rebuilds]
			}
			if len(nums) == 0 {
				t.Fatalf("%s: no rebuilds (rN OCI layouts)", filepath.Join(dir, enc))
			}
			for _, i := range nums {
				p := filepath.Join(dir, enc, fmt.Sprintf("r%d", i))
				idx, err := layout.ImageIndexFromPath(p)
				if err != nil {
					t.Fatal(err)
				}
				im, err := idx.IndexManifest()
				if err != nil || len(im.Manifests) != 1 {
					t.Fatalf("%s: want one image in the layout: %v", p, err)
				}
				img, err := idx.Image(im.Manifests[0].Digest)
				if err != nil {
					t.Fatal(err)
				}
				if !yield(benchImage{fmt.Sprintf("corpus/%s:r%d", enc, i), img}) {
					return
				}
			}
		}
	}
}

// newBytes returns the sizes of img's blobs (manifest, config, layers)
// not in seen, and adds them.
func newBytes(t *testing.T, img v1.Image, seen map[string]bool) int64 {
	var n int64
	add := func(d v1.Hash, size int64) {
		if !seen[d.String()] {
			seen[d.String()] = true
			n += size
		}
	}
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	add(d, int64(len(raw)))
	cd, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	add(cd, int64(len(cfg)))
	ls, _ := img.Layers()
	for _, l := range ls {
		ld, _ := l.Digest()
		sz, _ := l.Size()
		add(ld, sz)
	}
	return n
}

func mustImage(t *testing.T, n *node, ref string) v1.Image {
	img, err := remote.Image(refOn(t, n, ref))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func versitygw() string {
	for _, dir := range []string{os.Getenv("CHUNKYARD_TOOLS"), "../../.cache/tools"} {
		if dir == "" {
			continue
		}
		if p := filepath.Join(dir, "bin", "versitygw"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	return ""
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
