package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/opencontainers/go-digest"
)

// PeerFallback pulls what this node lacks from a peer, chunk-level: the
// shape of the registry's pull-through hook (StatManifest, Manifest,
// Blob), for a pull that replication has not served yet. Manifests come
// over the peer's /v2/ API; a blob's recipe comes from the peer, only the
// chunks this node lacks travel (as stored, each verified and indexed
// here), and the blob is rebuilt here from the recipe, its digest checked
// by the reader. A blob the peer has not chunked yet comes whole.
//
// Errors wrap registry.ErrManifestUnknown or registry.ErrBlobUnknown when
// the peer does not have the content, ErrPeer when it could not be asked.
type PeerFallback struct {
	peer  *peerState
	graph *refgraph.Graph
	store *chunkstore.Store
	asm   *assembler.Assembler
	log   *slog.Logger
	// Counters: bytes over the link, and the sizes of the blobs fetched.
	blobs, blobBytes atomic.Int64
}

// ErrPeer: the peer could not be asked, or refused (a registry.ErrUpstream).
var ErrPeer = fmt.Errorf("replication: the peer failed to supply the content: %w", registry.ErrUpstream)

// NewPeerFallback returns a fallback pulling from peer into graph and
// store. Close it after the last pull.
func NewPeerFallback(peer Peer, graph *refgraph.Graph, store *chunkstore.Store, client *http.Client, log *slog.Logger) *PeerFallback {
	if log == nil {
		log = slog.Default()
	}
	if client == nil {
		client = &http.Client{}
	}
	ps := &peerState{Peer: peer}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	ps.wire = countingTransport{base: base, sent: &ps.bytesSent, recv: &ps.bytesRecv}
	c := *client
	c.Transport = &ps.wire
	ps.client = &c
	return &PeerFallback{peer: ps, graph: graph, store: store, log: log,
		asm: assembler.New(graph, store, assembler.Options{Logger: log})}
}

// Close stops the fallback's assembler.
func (f *PeerFallback) Close() { f.asm.Close() }

// WireBytes returns the body bytes sent to and received from the peer.
func (f *PeerFallback) WireBytes() (sent, received int64) {
	return f.peer.bytesSent.Load(), f.peer.bytesRecv.Load()
}

func (f *PeerFallback) get(ctx context.Context, method, path string, accept []string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, f.peer.URL+path, nil)
	if err != nil {
		return nil, err
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	if f.peer.Username != "" || f.peer.Password != "" {
		req.SetBasicAuth(f.peer.Username, f.peer.Password)
	}
	resp, err := f.peer.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPeer, f.peer.Name, err)
	}
	return resp, nil
}

var manifestTypes = []string{
	"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
}

func (f *PeerFallback) manifest(ctx context.Context, repo, ref string, content bool) (registry.Manifest, error) {
	method := http.MethodHead
	if content {
		method = http.MethodGet
	}
	resp, err := f.get(ctx, method, "/v2/"+repo+"/manifests/"+url.PathEscape(ref), manifestTypes)
	if err != nil {
		return registry.Manifest{}, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return registry.Manifest{}, fmt.Errorf("%w: %s:%s on peer %s", registry.ErrManifestUnknown, repo, ref, f.peer.Name)
	case resp.StatusCode != http.StatusOK:
		return registry.Manifest{}, fmt.Errorf("%w: %s: manifest %s:%s: HTTP %d", ErrPeer, f.peer.Name, repo, ref, resp.StatusCode)
	}
	m := registry.Manifest{MediaType: resp.Header.Get("Content-Type")}
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return m, fmt.Errorf("%w: %s: manifest %s:%s without a valid digest", ErrPeer, f.peer.Name, repo, ref)
	}
	m.Digest = d
	m.Size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if content {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20+1))
		if err != nil {
			return m, fmt.Errorf("%w: %s: %w", ErrPeer, f.peer.Name, err)
		}
		if d.Algorithm().FromBytes(b) != d || len(b) > 4<<20 {
			return m, fmt.Errorf("%w: %s: manifest %s:%s does not match its digest", ErrPeer, f.peer.Name, repo, ref)
		}
		m.Content, m.Size = b, int64(len(b))
	}
	return m, nil
}

// StatManifest returns the digest, media type and size of ref on the peer.
func (f *PeerFallback) StatManifest(ctx context.Context, repo, ref string) (registry.Manifest, error) {
	return f.manifest(ctx, repo, ref, false)
}

// Manifest fetches manifest ref (a tag or a digest) of repo from the peer.
func (f *PeerFallback) Manifest(ctx context.Context, repo, ref string) (registry.Manifest, error) {
	return f.manifest(ctx, repo, ref, true)
}

// Blob returns a reader of blob d of repo, rebuilt here from the chunks
// this node has and those it fetched from the peer; a whole read is
// verified against d. The chunks fetched stay indexed (with no reference
// until the blob is stored).
func (f *PeerFallback) Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	resp, err := f.get(ctx, http.MethodGet, pathRecipe+"?repo="+url.QueryEscape(repo)+"&digest="+url.QueryEscape(string(d)), nil)
	if err != nil {
		return nil, 0, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJSONBody))
	resp.Body.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrPeer, f.peer.Name, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, 0, fmt.Errorf("%w: %s in %s on peer %s", registry.ErrBlobUnknown, d, repo, f.peer.Name)
	case http.StatusConflict: // not chunked there yet: whole
		return f.wholeBlob(ctx, repo, d)
	default:
		return nil, 0, fmt.Errorf("%w: %s: recipe of %s: HTTP %d", ErrPeer, f.peer.Name, d, resp.StatusCode)
	}
	var w wireBlob
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, 0, fmt.Errorf("%w: %s: recipe of %s: %w", ErrPeer, f.peer.Name, d, err)
	}
	b, err := fromWire(w)
	if err != nil || b.Digest != d {
		return nil, 0, fmt.Errorf("%w: %s: recipe of %s: %v", ErrPeer, f.peer.Name, d, err)
	}
	// The chunks this node lacks, in batches of at most chunkBatchBytes
	// raw bytes (the response is held in memory until verified).
	var lack []chunkstore.ID
	var raw int
	seen := map[chunkstore.ID]bool{}
	flush := func() error {
		if len(lack) == 0 {
			return nil
		}
		err := f.fetchChunks(ctx, repo, d, lack)
		lack, raw = lack[:0], 0
		return err
	}
	for _, c := range b.Chunks {
		if seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		ok, err := f.graph.HasChunk(c.ID)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			continue
		}
		if raw+int(c.RawLen) > chunkBatchBytes || len(lack) == maxCheckIDs {
			if err := flush(); err != nil {
				return nil, 0, err
			}
		}
		lack = append(lack, c.ID)
		raw += int(c.RawLen)
	}
	if err := flush(); err != nil {
		return nil, 0, err
	}
	r, err := f.asm.Open(ctx, assembler.Blob{Digest: b.Digest, Size: b.Size, Chunks: b.Chunks, Layout: b.Layout}, 0, b.Size)
	if err != nil {
		return nil, 0, err
	}
	f.blobs.Add(1)
	f.blobBytes.Add(b.Size)
	return r, b.Size, nil
}

// fetchChunks gets chunks of blob d from the peer, verifies, stores and
// indexes them.
func (f *PeerFallback) fetchChunks(ctx context.Context, repo string, d digest.Digest, ids []chunkstore.ID) error {
	req := chunksGetRequest{Repo: repo, Digest: d, IDs: make([]string, len(ids))}
	for i, id := range ids {
		req.IDs[i] = id.String()
	}
	b, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, f.peer.URL+pathChunksGet, bytes.NewReader(b))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	if f.peer.Username != "" || f.peer.Password != "" {
		hr.SetBasicAuth(f.peer.Username, f.peer.Password)
	}
	resp, err := f.peer.client.Do(hr)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPeer, f.peer.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s: chunks of %s: HTTP %d", ErrPeer, f.peer.Name, d, resp.StatusCode)
	}
	frames, err := readFrames(resp.Body, f.store.MaxChunk(), maxChunksBody)
	if err != nil {
		return fmt.Errorf("%w: %s: chunks of %s: %w", ErrPeer, f.peer.Name, d, err)
	}
	if len(frames) != len(ids) {
		return fmt.Errorf("%w: %s: %d chunks of %s sent, %d asked", ErrPeer, f.peer.Name, len(frames), d, len(ids))
	}
	for i, c := range frames {
		if c.ID != ids[i] {
			return fmt.Errorf("%w: %s: chunk %s sent for %s", ErrPeer, f.peer.Name, c.ID, ids[i])
		}
	}
	written, werr := f.store.WriteStored(ctx, frames)
	if len(written) > 0 {
		if err := f.graph.RecordChunks(written); err != nil {
			return err
		}
	}
	if werr != nil {
		return fmt.Errorf("%w: %s: %w", ErrPeer, f.peer.Name, werr)
	}
	return nil
}

// wholeBlob streams blob d over the peer's /v2/ API.
func (f *PeerFallback) wholeBlob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	resp, err := f.get(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+string(d), nil)
	if err != nil {
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		f.blobs.Add(1)
		return assembler.Verify(resp.Body, d, resp.ContentLength), resp.ContentLength, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, 0, fmt.Errorf("%w: %s in %s on peer %s", registry.ErrBlobUnknown, d, repo, f.peer.Name)
	}
	resp.Body.Close()
	return nil, 0, fmt.Errorf("%w: %s: blob %s: HTTP %d", ErrPeer, f.peer.Name, d, resp.StatusCode)
}
