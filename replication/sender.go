package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// SenderOptions configure a Sender.
type SenderOptions struct {
	Logger *slog.Logger
	// Client makes the requests to peers (default: a client with no
	// overall timeout; requests end with the sender's context).
	Client *http.Client
	// Poll is how often an idle peer's queue is looked at (default 100ms).
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure, doubled
	// per failure in a row (default 250ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// GiveUp is how many times in a row an event the peer rejects as
	// invalid (400) is tried before it is skipped and counted as failed
	// (default 10). Other failures (a peer down) are retried forever.
	GiveUp int
}

// Sender drains the outbox to the peers, one goroutine per peer, each
// event in order.
type Sender struct {
	graph *refgraph.Graph
	store *chunkstore.Store
	asm   *assembler.Assembler
	opts  SenderOptions
	log   *slog.Logger
	peers []*peerState
}

type peerState struct {
	Peer
	wire                                      countingTransport
	client                                    *http.Client
	images, events, failed, errs, chunks      atomic.Int64
	bytesSent, bytesRecv, wholeBlob, blobSent atomic.Int64
	down                                      atomic.Bool
	mu                                        sync.Mutex
	lastErr                                   string
}

// NewSender returns a sender of graph's outbox to peers (validated).
// Run starts it.
func NewSender(graph *refgraph.Graph, store *chunkstore.Store, peers []Peer, opts SenderOptions) *Sender {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Poll <= 0 {
		opts.Poll = 100 * time.Millisecond
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	if opts.GiveUp <= 0 {
		opts.GiveUp = 10
	}
	s := &Sender{graph: graph, store: store, opts: opts, log: opts.Logger,
		asm: assembler.New(graph, store, assembler.Options{Logger: opts.Logger, MaxEncodes: 1})}
	for _, p := range peers {
		ps := &peerState{Peer: p}
		base := opts.Client.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		ps.wire = countingTransport{base: base, sent: &ps.bytesSent, recv: &ps.bytesRecv}
		c := *opts.Client
		c.Transport = &ps.wire
		ps.client = &c
		s.peers = append(s.peers, ps)
	}
	return s
}

// Run replicates until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range s.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runPeer(ctx, p)
		}()
	}
	wg.Wait()
	s.asm.Close()
}

// errNotReady: a blob is still pending conversion; try again shortly.
var errNotReady = errors.New("replication: a blob is not converted yet")

func (s *Sender) runPeer(ctx context.Context, p *peerState) {
	backoff := s.opts.MinBackoff
	tries := 0
	for ctx.Err() == nil {
		evs, err := s.graph.OutboxEvents(p.Name, 64)
		if err != nil {
			s.log.Error("replication: reading the outbox", "peer", p.Name, "err", err)
			sleep(ctx, s.opts.MaxBackoff)
			continue
		}
		if len(evs) == 0 {
			sleep(ctx, s.opts.Poll)
			continue
		}
		for _, e := range evs {
			if !p.Matches(e.Repo) {
				if err := s.graph.AckEvents(p.Name, e.Seq); err != nil {
					s.log.Error("replication: acknowledging", "peer", p.Name, "err", err)
				}
				continue
			}
			err := s.replicate(ctx, p, e)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errNotReady) {
				sleep(ctx, s.opts.Poll*5)
				break
			}
			if err != nil {
				tries++
				p.errs.Add(1)
				p.setErr(err)
				// A request the peer refuses as invalid (400), or keeps
				// finding incomplete (409: something it names is missing
				// here too), is given up after GiveUp tries; anything else
				// (the peer down, a 5xx) is retried forever.
				var he *httpError
				permanent := errors.As(err, &he) && (he.status == http.StatusBadRequest || he.status == http.StatusConflict)
				if !permanent || tries < s.opts.GiveUp {
					p.down.Store(!errors.As(err, &he))
					s.log.Warn("replication: will retry", "peer", p.Name, "seq", e.Seq, "repo", e.Repo, "kind", e.Kind, "in", backoff, "err", err)
					sleep(ctx, backoff)
					backoff = min(2*backoff, s.opts.MaxBackoff)
					break
				}
				p.failed.Add(1)
				s.log.Error("replication: giving up on an event the peer rejects", "peer", p.Name, "seq", e.Seq, "repo", e.Repo, "digest", e.Digest, "tag", e.Tag, "err", err)
			}
			tries, backoff = 0, s.opts.MinBackoff
			p.down.Store(false)
			if err := s.graph.AckEvents(p.Name, e.Seq); err != nil {
				s.log.Error("replication: acknowledging", "peer", p.Name, "err", err)
				break
			}
			p.events.Add(1)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (p *peerState) setErr(err error) {
	p.mu.Lock()
	p.lastErr = err.Error()
	p.mu.Unlock()
}

// replicate applies one event to the peer.
func (s *Sender) replicate(ctx context.Context, p *peerState, e refgraph.Event) error {
	if e.Kind != refgraph.EventPut {
		var resp eventResponse
		return p.post(ctx, pathEvents, eventRequest{Event: e}, &resp)
	}
	return s.replicatePut(ctx, p, e, 0)
}

// isIndex reports whether a manifest media type lists manifests.
func isIndex(mediaType string) bool {
	return mediaType == "application/vnd.oci.image.index.v1+json" ||
		mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// replicatePut sends a manifest and what it names. The manifests an
// index names go first, as manifests (their own events normally did
// that already: then it costs a check).
func (s *Sender) replicatePut(ctx context.Context, p *peerState, e refgraph.Event, depth int) error {
	if isIndex(e.MediaType) && depth < 4 {
		for _, d := range e.Refs {
			m, err := s.graph.Manifest(e.Repo, d)
			if err != nil {
				continue // not a manifest here (any more): the peer says what it lacks
			}
			child := refgraph.Event{Kind: refgraph.EventPut, Repo: e.Repo, Digest: d, MediaType: m.MediaType, Size: m.Size, Refs: m.Refs}
			if err := s.replicatePut(ctx, p, child, depth+1); err != nil {
				return fmt.Errorf("manifest %s of index %s: %w", d, e.Digest, err)
			}
		}
	}
	start := time.Now()
	sent0, recv0 := p.bytesSent.Load(), p.bytesRecv.Load()
	mb, err := s.graph.Blob(e.Digest)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", e.Digest, err)
	}
	content, err := s.read(ctx, mb)
	if err != nil {
		return err
	}
	// What the peer has not indexed at all.
	ask := append([]digest.Digest{e.Digest}, e.Refs...)
	var check blobsCheckResponse
	if err := p.post(ctx, pathBlobsCheck, blobsCheckRequest{Repo: e.Repo, Blobs: ask}, &check); err != nil {
		return err
	}
	missing := map[digest.Digest]bool{}
	var whole int64
	for _, d := range check.Missing {
		missing[d] = true
	}
	if missing[e.Digest] {
		whole += e.Size
	}
	recipes := map[digest.Digest]refgraph.Blob{}
	var ids []chunkstore.ID
	seen := map[chunkstore.ID]bool{}
	for _, d := range e.Refs {
		if !missing[d] {
			continue
		}
		b, err := s.graph.Blob(d)
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
		if b.Kind == refgraph.KindPending {
			return errNotReady
		}
		whole += b.Size
		recipes[d] = b
		for _, c := range b.Chunks {
			if !seen[c.ID] {
				seen[c.ID] = true
				ids = append(ids, c.ID)
			}
		}
	}
	if err := s.sendChunks(ctx, p, ids); err != nil {
		return err
	}
	// Recipes (or links of what the peer has), then the manifest.
	for _, d := range e.Refs {
		req := blobRequest{Repo: e.Repo, Blob: wireBlob{Digest: d}, LinkOnly: true}
		if b, ok := recipes[d]; ok {
			req = blobRequest{Repo: e.Repo, Blob: toWire(b)}
		}
		var resp blobResponse
		err := p.post(ctx, pathBlobs, req, &resp)
		if len(resp.MissingChunks) > 0 {
			// Taken by the peer's GC meanwhile: send them, once more.
			ids, perr := parseIDs(resp.MissingChunks)
			if perr != nil {
				return perr
			}
			if err := s.sendChunks(ctx, p, ids); err != nil {
				return err
			}
			err = p.post(ctx, pathBlobs, req, &resp)
		}
		if err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
	}
	var resp eventResponse
	if err := p.post(ctx, pathEvents, eventRequest{Event: e, Manifest: content}, &resp); err != nil {
		return err
	}
	wire := p.bytesSent.Load() - sent0 + p.bytesRecv.Load() - recv0
	p.images.Add(1)
	p.wholeBlob.Add(whole)
	s.log.Info("replicated", "peer", p.Name, "repo", e.Repo, "digest", e.Digest, "tag", e.Tag, "tagged", resp.Tagged,
		"wire_bytes", wire, "whole_blob_bytes", whole, "blobs_new", len(recipes), "chunks_offered", len(ids),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// read reads a small blob (a manifest) whole.
func (s *Sender) read(ctx context.Context, b refgraph.Blob) ([]byte, error) {
	if b.Kind == refgraph.KindPending {
		return nil, errNotReady
	}
	r, err := s.asm.Open(ctx, assembler.Blob{Digest: b.Digest, Size: b.Size, Chunks: b.Chunks, Layout: b.Layout}, 0, b.Size)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// sendChunks offers ids to the peer and sends those it lacks, as stored.
func (s *Sender) sendChunks(ctx context.Context, p *peerState, ids []chunkstore.ID) error {
	var lack []chunkstore.ID
	for len(ids) > 0 {
		n := min(len(ids), maxCheckIDs)
		req := chunksCheckRequest{IDs: make([]string, n)}
		for i, id := range ids[:n] {
			req.IDs[i] = id.String()
		}
		var resp chunksCheckResponse
		if err := p.post(ctx, pathChunksCheck, req, &resp); err != nil {
			return err
		}
		got, err := parseIDs(resp.Missing)
		if err != nil {
			return err
		}
		lack = append(lack, got...)
		ids = ids[n:]
	}
	var body bytes.Buffer
	flush := func() error {
		if body.Len() == 0 {
			return nil
		}
		var resp chunksResponse
		err := p.postRaw(ctx, pathChunks, "application/octet-stream", body.Bytes(), &resp)
		body.Reset()
		return err
	}
	for _, id := range lack {
		c, err := s.graph.Chunk(id)
		if err != nil {
			return fmt.Errorf("chunk %s: %w", id, err)
		}
		sc, err := s.store.ReadStored(ctx, c.Loc, id, nil)
		if err != nil {
			return err
		}
		if body.Len()+frameHeaderLen+len(sc.Stored) > chunkBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if err := writeFrame(&body, sc); err != nil {
			return err
		}
		p.chunks.Add(1)
	}
	return flush()
}

// httpError is a peer's error answer.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("peer answered %d: %s", e.status, e.msg) }

func (p *peerState) post(ctx context.Context, path string, req, resp any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return p.postRaw(ctx, path, "application/json", b, resp)
}

func (p *peerState) postRaw(ctx context.Context, path, contentType string, body []byte, resp any) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", contentType)
	if p.Username != "" || p.Password != "" {
		hr.SetBasicAuth(p.Username, p.Password)
	}
	res, err := p.client.Do(hr)
	if err != nil {
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("peer %s: %w", p.Name, err)
	}
	if res.StatusCode == http.StatusConflict && resp != nil {
		_ = json.Unmarshal(data, resp) // missing chunks, for the caller
	}
	if res.StatusCode/100 != 2 {
		var er errorResponse
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = string(bytes.TrimSpace(data[:min(len(data), 200)]))
		}
		return &httpError{status: res.StatusCode, msg: er.Error}
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("peer %s: %s: %w", p.Name, path, err)
	}
	return nil
}

// countingTransport counts the body bytes that go over a peer's link.
type countingTransport struct {
	base       http.RoundTripper
	sent, recv *atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.ContentLength > 0 {
		t.sent.Add(r.ContentLength)
	}
	res, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	res.Body = &countingBody{ReadCloser: res.Body, n: t.recv}
	return res, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// PeerStats is what a sender did for one peer since it started, and the
// peer's queue in the outbox.
type PeerStats struct {
	Peer           string  `json:"peer"`
	URL            string  `json:"url"`
	Pending        uint64  `json:"pending_events"`
	LagSeconds     float64 `json:"lag_seconds"` // age of the oldest event not replicated
	Events         int64   `json:"events"`
	Images         int64   `json:"images"`
	ChunksSent     int64   `json:"chunks_sent"`
	BytesSent      int64   `json:"bytes_sent"`     // request bodies
	BytesReceived  int64   `json:"bytes_received"` // response bodies
	WholeBlobBytes int64   `json:"whole_blob_bytes"`
	Failed         int64   `json:"failed_events"`
	Errors         int64   `json:"errors"`
	Down           bool    `json:"down"`
	LastError      string  `json:"last_error,omitempty"`
}

// Stats returns every peer's stats.
func (s *Sender) Stats() []PeerStats {
	queue := map[string]refgraph.OutboxState{}
	if st, err := s.graph.Outbox(); err == nil {
		for _, q := range st {
			queue[q.Peer] = q
		}
	}
	var out []PeerStats
	for _, p := range s.peers {
		q := queue[p.Name]
		st := PeerStats{Peer: p.Name, URL: p.URL, Pending: q.Pending, Events: p.events.Load(), Images: p.images.Load(),
			ChunksSent: p.chunks.Load(), BytesSent: p.bytesSent.Load(), BytesReceived: p.bytesRecv.Load(),
			WholeBlobBytes: p.wholeBlob.Load(), Failed: p.failed.Load(), Errors: p.errs.Load(), Down: p.down.Load()}
		if !q.Oldest.IsZero() {
			st.LagSeconds = time.Since(q.Oldest).Seconds()
		}
		p.mu.Lock()
		st.LastError = p.lastErr
		p.mu.Unlock()
		out = append(out, st)
	}
	return out
}
