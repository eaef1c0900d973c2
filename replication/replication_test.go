package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/bench/benchtest"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ocihttp"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// region is the full handler stack of one node, in process.
type region struct {
	graph *refgraph.Graph
	store *chunkstore.Store
	svc   *registry.Service
	srv   *httptest.Server
	host  string
}

func newRegion(t *testing.T, name string, peers []string, wrap func(http.Handler) http.Handler) *region {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	store, err := chunkstore.Open(ctx, chunkstore.Options{Dir: filepath.Join(dir, "store"), PackSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	graph, err := refgraph.Open(filepath.Join(dir, "index"), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := registry.New(graph, store, registry.Options{UploadDir: filepath.Join(dir, "uploads"),
		Convert: registry.ConvertOptions{Workers: 1, PendingDir: filepath.Join(dir, "pending")}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { svc.Run(runCtx); close(ran) }()
	if err := graph.StartOutbox(name, peers); err != nil {
		t.Fatal(err)
	}
	rc := NewReceiver(graph, store, svc, ReceiverOptions{})
	var h http.Handler = Mount(ocihttp.NewHandler(svc, ocihttp.Options{}), rc)
	if wrap != nil {
		h = wrap(h)
	}
	r := &region{graph: graph, store: store, svc: svc, srv: httptest.NewServer(h)}
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	t.Cleanup(func() {
		r.srv.Close()
		stopRun()
		<-ran
		rc.Close()
		svc.Close()
		store.Close()
		graph.Close()
	})
	return r
}

func (r *region) ref(t *testing.T, s string) name.Reference {
	ref, err := name.ParseReference(r.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func testImage(t *testing.T, seed uint64, mtime time.Time) v1.Image {
	files := benchtest.Files(seed, 40, 8<<10)
	img, err := mutate.AppendLayers(empty.Image,
		static.NewLayer(benchtest.Gzip(t, benchtest.Tar(t, benchtest.Files(1, 60, 8<<10), mtime), 6), types.OCILayer),
		static.NewLayer(benchtest.Gzip(t, benchtest.Tar(t, files, mtime), 1), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// corrupter flips a byte of the stored bytes of the first n chunks
// requests it sees.
type corrupter struct {
	next http.Handler
	n    atomic.Int32
	seen atomic.Int32
}

func (c *corrupter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == pathChunks && c.n.Add(-1) >= 0 {
		c.seen.Add(1)
		body, _ := io.ReadAll(r.Body)
		body[len(body)-1] ^= 1
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	c.next.ServeHTTP(w, r)
}

// TestSenderReceiver replicates images between two in-process regions:
// byte-exact, a rebuild ships less than its blobs, a corrupted chunk is
// rejected (nothing indexed from it, nothing visible) and sent again,
// deletes and untags follow, and repository patterns select.
func TestSenderReceiver(t *testing.T) {
	var cor *corrupter
	b := newRegion(t, "b", nil, func(h http.Handler) http.Handler { cor = &corrupter{next: h}; return cor })
	peer := Peer{Name: "b", URL: b.srv.URL, Repositories: []string{"app/**"}}
	a := newRegion(t, "a", []string{"b"}, nil)
	s := NewSender(a.graph, a.store, []Peer{peer}, SenderOptions{Poll: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	drained := func() PeerStats {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := s.Stats()[0]
			if st.Pending == 0 {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("not drained: %+v", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	push := func(img v1.Image, ref string) {
		t.Helper()
		if err := remote.Write(a.ref(t, ref), img); err != nil {
			t.Fatal(err)
		}
	}
	same := func(ref string, img v1.Image) {
		t.Helper()
		got, err := remote.Image(b.ref(t, ref))
		if err != nil {
			t.Fatalf("pull %s from b: %v", ref, err)
		}
		want, _ := img.RawManifest()
		raw, _ := got.RawManifest()
		if !bytes.Equal(raw, want) {
			t.Fatalf("%s: manifest differs", ref)
		}
		ls, _ := img.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			gl, err := got.LayerByDigest(d)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := gl.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			dg := digest.Canonical.Digester()
			_, err = io.Copy(dg.Hash(), rc)
			rc.Close()
			if err != nil || dg.Digest().String() != d.String() {
				t.Fatalf("%s: layer %s pulled as %s (%v)", ref, d, dg.Digest(), err)
			}
		}
	}

	t0 := time.Unix(1_700_000_000, 0)
	// A corrupted chunk on the wire: rejected, sent again.
	cor.n.Store(1)
	img1 := testImage(t, 10, t0)
	push(img1, "app/x:v1")
	st1 := drained()
	same("app/x:v1", img1)
	if cor.seen.Load() != 1 || st1.Errors == 0 {
		t.Fatalf("the corrupted request was not seen or not an error: seen %d, %+v", cor.seen.Load(), st1)
	}

	img2 := testImage(t, 11, t0.Add(time.Hour)) // rebuild: same files, new mtimes, one layer new
	push(img2, "app/x:v2")
	st2 := drained()
	same("app/x:v2", img2)
	wire := st2.BytesSent + st2.BytesReceived - st1.BytesSent - st1.BytesReceived
	whole := st2.WholeBlobBytes - st1.WholeBlobBytes
	if wire >= whole {
		t.Fatalf("rebuild: %d bytes on the wire, whole blobs %d", wire, whole)
	}
	t.Logf("rebuild: wire %d, whole blobs %d (%.2fx)", wire, whole, float64(whole)/float64(wire))

	// A multi-platform index: its manifests first, then the index.
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testImage(t, 12, t0)},
		mutate.IndexAddendum{Add: testImage(t, 13, t0)})
	if err := remote.WriteIndex(a.ref(t, "app/multi:v1"), idx); err != nil {
		t.Fatal(err)
	}
	drained()
	gotIdx, err := remote.Index(b.ref(t, "app/multi:v1"))
	if err != nil {
		t.Fatalf("index on b: %v", err)
	}
	wantRaw, _ := idx.RawManifest()
	if raw, _ := gotIdx.RawManifest(); !bytes.Equal(raw, wantRaw) {
		t.Fatal("index differs on b")
	}
	im, _ := idx.IndexManifest()
	for _, desc := range im.Manifests {
		child, _ := idx.Image(desc.Digest)
		same("app/multi@"+desc.Digest.String(), child)
	}

	// The metrics say the same as the stats.
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "b" {
				t.Fatalf("%s labelled %v", mf.GetName(), m.GetLabel())
			}
			vals[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if vals["chunkyard_replication_pending_events"] != 0 || vals["chunkyard_replication_sent_bytes_total"] <= 0 ||
		vals["chunkyard_replication_whole_blob_bytes_total"] <= 0 || vals["chunkyard_replication_manifests_total"] < 2 {
		t.Fatalf("metrics %v", vals)
	}

	// Not selected by the peer's patterns: not replicated.
	push(img1, "other/y:v1")
	drained()
	if _, err := remote.Head(b.ref(t, "other/y:v1")); err == nil {
		t.Fatal("other/y replicated though the peer's patterns do not select it")
	}

	// Untag and delete replicate.
	if err := remote.Delete(a.ref(t, "app/x:v1")); err != nil {
		t.Fatal(err)
	}
	d2, _ := img2.Digest()
	if err := remote.Delete(a.ref(t, "app/x@"+d2.String())); err != nil {
		t.Fatal(err)
	}
	drained()
	if _, err := remote.Head(b.ref(t, "app/x:v1")); err == nil {
		t.Fatal("untag not replicated")
	}
	if _, err := remote.Head(b.ref(t, "app/x:v2")); err == nil {
		t.Fatal("delete not replicated")
	}
}

// TestReceiverRejects sends the receiver bad input directly: a chunk
// whose bytes are not its id, a recipe whose bytes are not its digest,
// a manifest before its blobs. Each is refused with a clear status and
// leaves nothing indexed.
func TestReceiverRejects(t *testing.T) {
	b := newRegion(t, "b", nil, nil)
	post := func(path, ct string, body []byte) (int, string) {
		t.Helper()
		resp, err := http.Post(b.srv.URL+path, ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg)
	}
	jsonBody := func(v any) []byte { b, _ := json.Marshal(v); return b }

	data := []byte(strings.Repeat("chunk data ", 1000))
	var good chunkstore.ID
	copy(good[:], mustHex(t, digest.FromBytes(data).Encoded()))
	var frames bytes.Buffer
	bad := chunkstore.StoredChunk{ID: good, RawLen: uint32(len(data)), Stored: append([]byte("X"), data[1:]...)}
	writeFrame(&frames, bad)
	if code, msg := post(pathChunks, "application/octet-stream", frames.Bytes()); code != http.StatusBadRequest || !strings.Contains(msg, "does not match") {
		t.Fatalf("corrupt chunk: %d %s", code, msg)
	}
	if ok, _ := b.graph.HasChunk(good); ok {
		t.Fatal("a corrupt chunk was indexed")
	}
	frames.Reset()
	writeFrame(&frames, chunkstore.StoredChunk{ID: good, RawLen: uint32(len(data)), Stored: data})
	if code, msg := post(pathChunks, "application/octet-stream", frames.Bytes()); code != http.StatusOK {
		t.Fatalf("good chunk: %d %s", code, msg)
	}
	// A recipe naming that chunk under another digest: the rebuilt bytes
	// do not match.
	wrong := digest.FromString("something else")
	req := blobRequest{Repo: "r", Blob: wireBlob{Digest: wrong, Size: int64(len(data)), Chunks: []wireChunk{{ID: good.String(), RawLen: uint32(len(data))}}}}
	if code, msg := post(pathBlobs, "application/json", jsonBody(req)); code != http.StatusBadRequest {
		t.Fatalf("wrong digest: %d %s", code, msg)
	}
	if _, err := b.graph.Blob(wrong); !errors.Is(err, refgraph.ErrNotFound) {
		t.Fatalf("a blob that failed verification was indexed: %v", err)
	}
	// A recipe naming a chunk the receiver lacks: 409 with the list.
	var other chunkstore.ID
	other[0] = 1
	req.Blob.Chunks = append(req.Blob.Chunks, wireChunk{ID: other.String(), RawLen: 1})
	req.Blob.Size++
	if code, msg := post(pathBlobs, "application/json", jsonBody(req)); code != http.StatusConflict || !strings.Contains(msg, other.String()) {
		t.Fatalf("missing chunk: %d %s", code, msg)
	}
	// The right digest: indexed and linked.
	req = blobRequest{Repo: "r", Blob: wireBlob{Digest: digest.FromBytes(data), Size: int64(len(data)), Chunks: []wireChunk{{ID: good.String(), RawLen: uint32(len(data))}}}}
	if code, msg := post(pathBlobs, "application/json", jsonBody(req)); code != http.StatusCreated {
		t.Fatalf("good blob: %d %s", code, msg)
	}
	if ok, _ := b.graph.Linked("r", digest.FromBytes(data)); !ok {
		t.Fatal("blob not linked")
	}
	// A manifest naming a blob the receiver lacks: 409, nothing visible.
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromString("cfg").String() + `","size":3},"layers":[]}`)
	ev := eventRequest{Event: refgraph.Event{Kind: refgraph.EventPut, Repo: "r", Digest: digest.FromBytes(man),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Tag: "t", Stamp: refgraph.Stamp{Time: 1, Region: "a"}}, Manifest: man}
	if code, msg := post(pathEvents, "application/json", jsonBody(ev)); code != http.StatusConflict {
		t.Fatalf("manifest before its blobs: %d %s", code, msg)
	}
	if _, err := b.graph.ResolveTag("r", "t"); !errors.Is(err, refgraph.ErrNotFound) {
		t.Fatalf("tag visible: %v", err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	id, err := chunkstore.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id[:]
}

// TestGCKeepsWhatAPeerStillNeeds: an image pushed while its peer is down
// and deleted before the peer is back survives GC (its put event holds
// its blobs), reaches the peer, then goes there too; once the peer has
// both events, GC takes it.
func TestGCKeepsWhatAPeerStillNeeds(t *testing.T) {
	b := newRegion(t, "b", nil, nil)
	a := newRegion(t, "a", []string{"b"}, nil)
	img := testImage(t, 20, time.Unix(1_700_000_000, 0))
	if err := remote.Write(a.ref(t, "app/gc:v1"), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ls, _ := img.Layers()
	layer, _ := ls[1].Digest()
	ld := digest.Digest(layer.String())
	// Wait for the converter, then delete the image.
	deadline := time.Now().Add(30 * time.Second)
	for {
		bl, err := a.graph.Blob(ld)
		if err == nil && bl.Kind != refgraph.KindPending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("layer not converted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := remote.Delete(a.ref(t, "app/gc@"+d.String())); err != nil {
		t.Fatal(err)
	}
	col := gc.New(a.graph, a.store, nil)
	cfg := gc.Default()
	cfg.GracePeriod = gc.Duration(time.Nanosecond)
	cfg.PackGracePeriod = gc.Duration(time.Nanosecond)
	a.graph.SetClock(func() time.Time { return time.Now().Add(time.Hour) }) // past every grace period
	if _, err := col.Run(context.Background(), cfg, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.graph.Blob(ld); err != nil {
		t.Fatalf("GC deleted a layer a pending replication needs: %v", err)
	}

	s := NewSender(a.graph, a.store, []Peer{{Name: "b", URL: b.srv.URL}}, SenderOptions{Poll: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline = time.Now().Add(30 * time.Second)
	for s.Stats()[0].Pending > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %+v", s.Stats()[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	st := s.Stats()[0]
	if st.Images != 1 || st.Errors != 0 || st.Failed != 0 {
		t.Fatalf("sender stats %+v: want the deleted image shipped without errors", st)
	}
	if _, err := b.graph.Blob(ld); err != nil {
		t.Fatalf("the layer did not reach b: %v", err)
	}
	if _, err := remote.Head(b.ref(t, "app/gc:v1")); err == nil {
		t.Fatal("the delete did not follow the put to b")
	}
	if _, err := col.Run(context.Background(), cfg, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.graph.Blob(ld); !errors.Is(err, refgraph.ErrNotFound) {
		t.Fatalf("GC kept the layer after the peer had every event: %v", err)
	}
}

// TestPeerFallback pulls an image through a peer at chunk level: the
// manifest over /v2/, each blob rebuilt here from its recipe and the
// chunks this node lacks, verified; only chunks of the named blob are
// served; unknown content is ErrManifestUnknown / ErrBlobUnknown.
func TestPeerFallback(t *testing.T) {
	a := newRegion(t, "a", nil, nil)
	b := newRegion(t, "b", nil, nil)
	t0 := time.Unix(1_700_000_000, 0)
	old, img := testImage(t, 30, t0), testImage(t, 31, t0.Add(time.Hour))
	for _, x := range []struct {
		r   *region
		img v1.Image
	}{{b, old}, {a, img}} {
		if err := remote.Write(x.r.ref(t, "app/p:v"), x.img); err != nil {
			t.Fatal(err)
		}
	}
	// Let both converters split their layers.
	for _, r := range []*region{a, b} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			q, err := r.graph.Queued(1)
			if err == nil && len(q) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("conversion queue not empty")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	f := NewPeerFallback(Peer{Name: "a", URL: a.srv.URL}, b.graph, b.store, nil, nil)
	defer f.Close()
	ctx := context.Background()
	m, err := f.Manifest(ctx, "app/p", "v")
	want, _ := img.RawManifest()
	if err != nil || !bytes.Equal(m.Content, want) {
		t.Fatalf("manifest through the peer: %v", err)
	}
	var total int64
	ls, _ := img.Layers()
	for _, l := range ls {
		ld, _ := l.Digest()
		r, size, err := f.Blob(ctx, "app/p", digest.Digest(ld.String()))
		if err != nil {
			t.Fatal(err)
		}
		dg := digest.Canonical.Digester()
		n, err := io.Copy(dg.Hash(), r)
		r.Close()
		if err != nil || n != size || dg.Digest().String() != ld.String() {
			t.Fatalf("layer %s through the peer: %d bytes, %s, %v", ld, n, dg.Digest(), err)
		}
		total += size
	}
	sent, recv := f.WireBytes()
	t.Logf("pulled %d bytes of layers with %d bytes over the link", total, sent+recv)
	if sent+recv >= total {
		t.Fatalf("pull-through moved %d bytes for %d bytes of layers b mostly had", sent+recv, total)
	}
	if _, err := f.Manifest(ctx, "app/p", "nope"); !errors.Is(err, registry.ErrManifestUnknown) {
		t.Fatalf("unknown tag: %v", err)
	}
	if _, _, err := f.Blob(ctx, "app/p", digest.FromString("nope")); !errors.Is(err, registry.ErrBlobUnknown) {
		t.Fatalf("unknown blob: %v", err)
	}
	// A chunk outside the named blob is not served.
	cfg, _ := img.ConfigName()
	ld, _ := ls[0].Digest()
	lb, _ := a.graph.Blob(digest.Digest(ld.String()))
	body, _ := json.Marshal(chunksGetRequest{Repo: "app/p", Digest: digest.Digest(cfg.String()), IDs: []string{lb.Chunks[0].ID.String()}})
	resp, err := http.Post(a.srv.URL+pathChunksGet, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("chunk of another blob: HTTP %d", resp.StatusCode)
	}
}
