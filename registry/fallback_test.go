package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeUpstream is an in-memory Fallback: manifests by repo and reference,
// blobs by digest, with knobs for faults and request counts.
type fakeUpstream struct {
	mu        sync.Mutex
	manifests map[string]Manifest // "repo@ref"
	blobs     map[digest.Digest][]byte
	corrupt   map[digest.Digest]bool // serve these blobs with a byte flipped
	down      bool
	gate      chan struct{} // if not nil, blob bodies wait for it
	requests  atomic.Int64
	blobGets  atomic.Int64
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{manifests: map[string]Manifest{}, blobs: map[digest.Digest][]byte{}, corrupt: map[digest.Digest]bool{}}
}

func (u *fakeUpstream) addBlob(b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	u.mu.Lock()
	u.blobs[d] = b
	u.mu.Unlock()
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(b))}
}

// addManifest stores content under its digest and the tags.
func (u *fakeUpstream) addManifest(repo, mediaType string, content []byte, tags ...string) ocispec.Descriptor {
	d := digest.FromBytes(content)
	m := Manifest{Digest: d, MediaType: mediaType, Size: int64(len(content)), Content: content}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, ref := range append(tags, d.String()) {
		u.manifests[repo+"@"+ref] = m
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: m.Size}
}

func (u *fakeUpstream) setDown(down bool) {
	u.mu.Lock()
	u.down = down
	u.mu.Unlock()
}

func (u *fakeUpstream) lookup(repo, ref string) (Manifest, error) {
	u.requests.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.down {
		return Manifest{}, fmt.Errorf("%w: connection refused", ErrUpstream)
	}
	m, ok := u.manifests[repo+"@"+ref]
	if !ok {
		return Manifest{}, fmt.Errorf("%w: %s", ErrManifestUnknown, ref)
	}
	return m, nil
}

func (u *fakeUpstream) StatManifest(ctx context.Context, repo, ref string) (Manifest, error) {
	m, err := u.lookup(repo, ref)
	m.Content = nil
	return m, err
}

func (u *fakeUpstream) Manifest(ctx context.Context, repo, ref string) (Manifest, error) {
	return u.lookup(repo, ref)
}

func (u *fakeUpstream) Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	u.requests.Add(1)
	u.blobGets.Add(1)
	u.mu.Lock()
	b, ok := u.blobs[d]
	down, gate, corrupt := u.down, u.gate, u.corrupt[d]
	u.mu.Unlock()
	if down {
		return nil, 0, fmt.Errorf("%w: connection refused", ErrUpstream)
	}
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	if corrupt {
		b = bytes.Clone(b)
		b[len(b)/2] ^= 1
	}
	var r io.Reader = bytes.NewReader(b)
	if gate != nil {
		// Half at once, the rest once the gate opens.
		r = io.MultiReader(bytes.NewReader(b[:len(b)/2]), gateReader{gate, bytes.NewReader(b[len(b)/2:])})
	}
	return io.NopCloser(r), int64(len(b)), nil
}

type gateReader struct {
	gate <-chan struct{}
	r    io.Reader
}

func (g gateReader) Read(p []byte) (int, error) {
	<-g.gate
	return g.r.Read(p)
}

// newFallbackEnv is a service pulling through up, resolving tags again
// after tagTTL.
func newFallbackEnv(t *testing.T, up Fallback, tagTTL time.Duration) *env {
	e := newEnv(t)
	e.svc.Close()
	var err error
	e.svc, err = New(e.graph, e.store, Options{UploadDir: filepath.Join(e.dir, "uploads"), UploadTTL: time.Hour,
		Fallback: up, FallbackTagTTL: tagTTL})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// upstreamImage adds an image of a config and layers of the given sizes
// to up as repo:tag and returns its manifest and the blobs.
func upstreamImage(t *testing.T, up *fakeUpstream, repo, tag string, sizes ...int) (ocispec.Descriptor, [][]byte) {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%q}`, tag))
	blobs := [][]byte{cfg}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: up.addBlob(cfg)}
	m.SchemaVersion = 2
	m.Config.MediaType = ocispec.MediaTypeImageConfig
	for _, n := range sizes {
		b := randomBytes(t, n)
		blobs = append(blobs, b)
		m.Layers = append(m.Layers, up.addBlob(b))
	}
	return up.addManifest(repo, ocispec.MediaTypeImageManifest, manifestJSON(t, m), tag), blobs
}

// waitFallback waits until no manifest or blob is being fetched.
func waitFallback(t *testing.T, s *Service) {
	t.Helper()
	for i := 0; ; i++ {
		s.fb.mu.Lock()
		n := len(s.fb.manifests) + len(s.fb.blobs)
		s.fb.mu.Unlock()
		if n == 0 {
			return
		}
		if i == 1000 {
			t.Fatalf("%d fetches still running", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readBlob(t *testing.T, s *Service, repo string, d digest.Digest) ([]byte, error) {
	t.Helper()
	r, _, err := s.OpenBlob(context.Background(), repo, d, 0, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// TestFallbackPullThrough: a pull of a tag not here is served from the
// fallback and stored (manifest, tag, blobs); the next pull asks the
// fallback nothing, and works with it down.
func TestFallbackPullThrough(t *testing.T) {
	up := newFakeUpstream()
	desc, blobs := upstreamImage(t, up, "lib/app", "v1", 3<<20, 1000)
	e := newFallbackEnv(t, up, time.Hour)
	ctx := context.Background()

	pull := func() {
		t.Helper()
		m, err := e.svc.GetManifest(ctx, "lib/app", "v1")
		if err != nil {
			t.Fatal(err)
		}
		if m.Digest != desc.Digest || digest.FromBytes(m.Content) != desc.Digest || m.MediaType != desc.MediaType {
			t.Fatalf("manifest %s %s, want %s", m.Digest, m.MediaType, desc.Digest)
		}
		for _, b := range blobs {
			size, err := e.svc.StatBlob(ctx, "lib/app", digest.FromBytes(b))
			if err != nil || size != int64(len(b)) {
				t.Fatalf("stat blob: %d, %v", size, err)
			}
			got, err := readBlob(t, e.svc, "lib/app", digest.FromBytes(b))
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("blob of %d bytes: read %d, %v", len(b), len(got), err)
			}
		}
	}
	pull()
	waitFallback(t, e.svc)
	if d, err := e.graph.ResolveTag("lib/app", "v1"); err != nil || d != desc.Digest {
		t.Fatalf("tag not stored: %s, %v", d, err)
	}
	if got := up.blobGets.Load(); got != int64(len(blobs)) {
		t.Errorf("%d blob GETs upstream, want %d (one per blob)", got, len(blobs))
	}
	before := up.requests.Load()
	pull()
	if n := up.requests.Load() - before; n != 0 {
		t.Errorf("second pull made %d upstream requests, want 0", n)
	}
	up.setDown(true)
	pull()

	// Another repository of the same blobs: the upstream is asked (it has
	// them there), nothing is fetched twice.
	up.setDown(false)
	up.mu.Lock()
	up.manifests["other/app@v1"] = up.manifests["lib/app@v1"]
	up.manifests["other/app@"+desc.Digest.String()] = up.manifests["lib/app@v1"]
	up.mu.Unlock()
	gets := up.blobGets.Load()
	if _, err := e.svc.GetManifest(ctx, "other/app", "v1"); err != nil {
		t.Fatal(err)
	}
	waitFallback(t, e.svc)
	if d, err := e.graph.ResolveTag("other/app", "v1"); err != nil || d != desc.Digest {
		t.Fatalf("other/app:v1 not stored: %s, %v", d, err)
	}
	for _, b := range blobs {
		got, err := readBlob(t, e.svc, "other/app", digest.FromBytes(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("other/app blob: %v", err)
		}
	}
	if n := up.blobGets.Load() - gets; n != int64(len(blobs)) {
		t.Errorf("%d blob requests for other/app, want %d", n, len(blobs))
	}
}

// TestFallbackConcurrentMissesFetchOnce: readers of a blob being fetched
// follow the one transfer, and all get its bytes.
func TestFallbackConcurrentMissesFetchOnce(t *testing.T) {
	up := newFakeUpstream()
	blob := randomBytes(t, 5<<20)
	desc := up.addBlob(blob)
	up.gate = make(chan struct{})
	e := newFallbackEnv(t, up, time.Hour)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := readBlob(t, e.svc, "r", desc.Digest)
			if err == nil && !bytes.Equal(got, blob) {
				err = fmt.Errorf("read %d bytes, not the blob", len(got))
			}
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(up.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFallback(t, e.svc)
	if n := up.blobGets.Load(); n != 1 {
		t.Fatalf("%d upstream GETs, want 1", n)
	}
	if b, err := e.graph.Blob(desc.Digest); err != nil || b.Size != desc.Size {
		t.Fatalf("blob not stored: %+v, %v", b, err)
	}
	// A range of it, now local.
	r, _, err := e.svc.OpenBlob(context.Background(), "r", desc.Digest, 100, 50)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, blob[100:150]) {
		t.Fatal("range differs")
	}
}

// TestFallbackCorruptTransfer: a blob whose bytes do not match their
// digest fails its readers with ErrUpstream and stores nothing; a
// manifest that does not match is refused.
func TestFallbackCorruptTransfer(t *testing.T) {
	up := newFakeUpstream()
	blob := randomBytes(t, 2<<20)
	desc := up.addBlob(blob)
	up.corrupt[desc.Digest] = true
	e := newFallbackEnv(t, up, time.Hour)

	_, err := readBlob(t, e.svc, "r", desc.Digest)
	if !errors.Is(err, ErrUpstream) {
		t.Fatalf("read of a corrupt transfer: %v, want ErrUpstream", err)
	}
	waitFallback(t, e.svc)
	if _, err := e.graph.Blob(desc.Digest); err == nil {
		t.Fatal("a corrupt blob was stored")
	}
	if _, err := e.svc.StatBlob(context.Background(), "other", digest.FromString("nothing")); !errors.Is(err, ErrBlobUnknown) {
		t.Fatalf("a blob the upstream lacks: %v, want ErrBlobUnknown", err)
	}
	waitFallback(t, e.svc)
	names, _ := os.ReadDir(filepath.Join(e.dir, "uploads"))
	if len(names) != 0 {
		t.Fatalf("upload spool not cleaned: %d files", len(names))
	}

	// Fixed upstream: the next pull stores it.
	up.mu.Lock()
	delete(up.corrupt, desc.Digest)
	up.mu.Unlock()
	if got, err := readBlob(t, e.svc, "r", desc.Digest); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("after the fix: %v", err)
	}

	// A manifest whose content is not its digest.
	bad := digest.FromString("not this")
	up.mu.Lock()
	up.manifests["r@"+bad.String()] = Manifest{Digest: bad, MediaType: ocispec.MediaTypeImageManifest, Content: []byte(`{"schemaVersion":2}`)}
	up.mu.Unlock()
	if _, err := e.svc.GetManifest(context.Background(), "r", bad.String()); !errors.Is(err, ErrUpstream) {
		t.Fatalf("corrupt manifest: %v, want ErrUpstream", err)
	}
	if _, err := e.graph.Manifest("r", bad); err == nil {
		t.Fatal("a corrupt manifest was stored")
	}
}

// TestFallbackTagFreshness: with a TTL of 0 every pull of a tag asks the
// upstream, a moved tag is followed, and when the upstream is down the
// local tag is served.
func TestFallbackTagFreshness(t *testing.T) {
	up := newFakeUpstream()
	v1, _ := upstreamImage(t, up, "app", "latest", 1000)
	e := newFallbackEnv(t, up, 0)
	ctx := context.Background()
	if m, err := e.svc.GetManifest(ctx, "app", "latest"); err != nil || m.Digest != v1.Digest {
		t.Fatalf("first pull: %s, %v", m.Digest, err)
	}
	waitFallback(t, e.svc)
	v2, _ := upstreamImage(t, up, "app", "latest", 2000)
	if m, err := e.svc.GetManifest(ctx, "app", "latest"); err != nil || m.Digest != v2.Digest {
		t.Fatalf("after the tag moved: %s, %v; want %s", m.Digest, err, v2.Digest)
	}
	waitFallback(t, e.svc)
	if d, _ := e.graph.ResolveTag("app", "latest"); d != v2.Digest {
		t.Fatalf("local tag at %s, want %s", d, v2.Digest)
	}
	// Back to v1 upstream, which is here: the tag just moves.
	up.addManifest("app", ocispec.MediaTypeImageManifest, up.manifests["app@"+v1.Digest.String()].Content, "latest")
	if m, err := e.svc.StatManifest(ctx, "app", "latest"); err != nil || m.Digest != v1.Digest {
		t.Fatalf("tag moved back: %s, %v", m.Digest, err)
	}
	if d, _ := e.graph.ResolveTag("app", "latest"); d != v1.Digest {
		t.Fatalf("local tag at %s, want %s", d, v1.Digest)
	}
	up.setDown(true)
	if m, err := e.svc.GetManifest(ctx, "app", "latest"); err != nil || m.Digest != v1.Digest {
		t.Fatalf("upstream down: %s, %v; want the local %s", m.Digest, err, v1.Digest)
	}
	if _, err := e.svc.GetManifest(ctx, "app", "nothere"); !errors.Is(err, ErrUpstream) {
		t.Fatalf("a tag neither here nor reachable: %v, want ErrUpstream", err)
	}
	up.setDown(false)
	if _, err := e.svc.GetManifest(ctx, "app", "nothere"); !errors.Is(err, ErrManifestUnknown) {
		t.Fatalf("a tag upstream lacks: %v, want ErrManifestUnknown", err)
	}
}

// TestFallbackIndex: an index pulled through is stored with all its
// child manifests and their blobs, whatever the client pulled of it.
func TestFallbackIndex(t *testing.T) {
	up := newFakeUpstream()
	a, _ := upstreamImage(t, up, "multi", "amd64", 5000)
	b, blobsB := upstreamImage(t, up, "multi", "arm64", 6000)
	a.Platform = &ocispec.Platform{Architecture: "amd64", OS: "linux"}
	b.Platform = &ocispec.Platform{Architecture: "arm64", OS: "linux"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{a, b}}
	idx.SchemaVersion = 2
	id := up.addManifest("multi", ocispec.MediaTypeImageIndex, manifestJSON(t, idx), "latest")
	e := newFallbackEnv(t, up, time.Hour)
	ctx := context.Background()
	m, err := e.svc.GetManifest(ctx, "multi", "latest")
	if err != nil || m.Digest != id.Digest {
		t.Fatalf("index: %s, %v", m.Digest, err)
	}
	waitFallback(t, e.svc)
	if d, err := e.graph.ResolveTag("multi", "latest"); err != nil || d != id.Digest {
		t.Fatalf("index tag: %s, %v", d, err)
	}
	for _, c := range []digest.Digest{a.Digest, b.Digest} {
		if _, err := e.graph.Manifest("multi", c); err != nil {
			t.Fatalf("child %s not stored: %v", c, err)
		}
	}
	up.setDown(true)
	for _, blob := range blobsB {
		if got, err := readBlob(t, e.svc, "multi", digest.FromBytes(blob)); err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("blob of the child no one pulled: %v", err)
		}
	}
}

// TestFallbackHeadDoesNotFetch: a HEAD of a tag not here is answered
// from the fallback's HEAD alone; nothing is fetched or stored.
func TestFallbackHeadDoesNotFetch(t *testing.T) {
	up := newFakeUpstream()
	desc, _ := upstreamImage(t, up, "app", "v1", 1000)
	e := newFallbackEnv(t, up, time.Hour)
	m, err := e.svc.StatManifest(context.Background(), "app", "v1")
	if err != nil || m.Digest != desc.Digest || m.Size != desc.Size || m.MediaType != desc.MediaType || m.Content != nil {
		t.Fatalf("HEAD = %+v, %v; want %+v", m, err, desc)
	}
	if n := up.requests.Load(); n != 1 {
		t.Fatalf("%d upstream requests, want 1", n)
	}
	waitFallback(t, e.svc)
	if _, err := e.graph.Manifest("app", desc.Digest); err == nil {
		t.Fatal("a HEAD stored the manifest")
	}
	if n := up.blobGets.Load(); n != 0 {
		t.Fatalf("a HEAD fetched %d blobs", n)
	}
}

// TestFallbackLayerConverted: a gzip layer pulled through is committed
// like a pushed one: pending, then split by the converter, and it pulls
// back byte for byte.
func TestFallbackLayerConverted(t *testing.T) {
	up := newFakeUpstream()
	layer := gzipped(t, rootfsN(t, 24, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), 6)
	desc := up.addBlob(layer)
	e := newConvertEnv(t, ConvertOptions{CheckpointSpacing: 512 << 10})
	e.svc.Close()
	var err error
	e.svc, err = New(e.graph, e.store, Options{UploadDir: filepath.Join(e.dir, "uploads"), UploadTTL: time.Hour,
		Convert: e.convert, Fallback: up})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readBlob(t, e.svc, "app", desc.Digest); err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("pull-through read: %v", err)
	}
	waitFallback(t, e.svc)
	if b, err := e.graph.Blob(desc.Digest); err != nil || b.Kind != refgraph.KindPending {
		t.Fatalf("after the fetch: %+v, %v; want pending", b, err)
	}
	e.drain()
	if b, err := e.graph.Blob(desc.Digest); err != nil || b.Kind != refgraph.KindLayer {
		t.Fatalf("after conversion: kind %d, %v; want a split layer", b.Kind, err)
	}
	up.setDown(true)
	if got, err := readBlob(t, e.svc, "app", desc.Digest); err != nil || !bytes.Equal(got, layer) {
		t.Fatalf("converted read: %v", err)
	}
}
