package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/opencontainers/go-digest"
)

// Receiver serves the protocol's endpoints: it takes chunks, blob
// recipes and changes from peers, verifies them, and indexes them.
type Receiver struct {
	graph  *refgraph.Graph
	store  *chunkstore.Store
	reg    *registry.Service
	asm    *assembler.Assembler // verifies, keeping nothing
	cached *assembler.Assembler // verifies into the layer cache (pre-encode); nil: none
	pre    func(repo string) bool
	log    *slog.Logger
	verify chan struct{} // bounds blob verifications (re-encodes) at once
	// Status, if set, answers GET status (the sender's view).
	Status func() any
}

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	Logger *slog.Logger
	// LayerCache, with PreEncode, is where replicated layers are kept
	// encoded: the re-encode that verifies a layer writes the registry's
	// layer cache, so the first pull in this region is hot. PreEncode
	// selects the repositories (nil: none).
	LayerCache *chunkstore.FileCache
	PreEncode  func(repo string) bool
}

// NewReceiver returns a receiver storing into graph and store, and
// putting manifests through reg.
func NewReceiver(graph *refgraph.Graph, store *chunkstore.Store, reg *registry.Service, opts ReceiverOptions) *Receiver {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	rc := &Receiver{graph: graph, store: store, reg: reg, log: log,
		asm:    assembler.New(graph, store, assembler.Options{Logger: log, MaxEncodes: runtime.GOMAXPROCS(0)}),
		verify: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
	if opts.LayerCache != nil && opts.PreEncode != nil {
		rc.cached = assembler.New(graph, store, assembler.Options{Logger: log, MaxEncodes: runtime.GOMAXPROCS(0), LayerCache: opts.LayerCache})
		rc.pre = opts.PreEncode
	}
	return rc
}

// Close stops the receiver's assemblers; call it after the last request.
func (rc *Receiver) Close() {
	rc.asm.Close()
	if rc.cached != nil {
		rc.cached.Close()
	}
}

// Mount returns a handler that serves the protocol (rc: a Receiver, or
// one behind an authentication middleware) under PathPrefix and
// everything else with next.
func Mount(next http.Handler, rc http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= len(PathPrefix) && r.URL.Path[:len(PathPrefix)] == PathPrefix {
			rc.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP routes a protocol request.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Permission: a node-to-node request must carry an admin's
	// credentials (basic auth, from the sender's replication config).
	// serve puts the auth's admin middleware in front of this handler
	// (Mount's rc) when auth is on; it answers 401/403 for anyone else.
	if r.URL.Path == pathRecipe && r.Method == http.MethodGet {
		rc.recipe(w, r)
		return
	}
	if r.URL.Path == pathStatus && r.Method == http.MethodGet {
		var st any = struct{}{}
		if rc.Status != nil {
			st = rc.Status()
		}
		writeJSON(w, http.StatusOK, st)
		return
	}
	if r.Method != http.MethodPost {
		writeErr(w, http.StatusMethodNotAllowed, errors.New("method not allowed"))
		return
	}
	switch r.URL.Path {
	case pathBlobsCheck:
		rc.blobsCheck(w, r)
	case pathChunksCheck:
		rc.chunksCheck(w, r)
	case pathChunks:
		rc.chunks(w, r)
	case pathBlobs:
		rc.blob(w, r)
	case pathEvents:
		rc.event(w, r)
	case pathChunksGet:
		rc.chunksGet(w, r)
	default:
		writeErr(w, http.StatusNotFound, fmt.Errorf("no endpoint %s", r.URL.Path))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, errorResponse{Error: err.Error()})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("request: %w", err))
		return false
	}
	return true
}

// statusOf maps an error of the index or the service to a status: 409
// for "something is missing, send it and retry", 400 for a bad request,
// 507/500 for storage faults.
func statusOf(err error) int {
	switch {
	case errors.Is(err, refgraph.ErrChunkMissing), errors.Is(err, registry.ErrManifestBlobUnknown),
		errors.Is(err, refgraph.ErrRefMissing):
		return http.StatusConflict
	case errors.Is(err, chunkstore.ErrCorrupt), errors.Is(err, registry.ErrManifestInvalid),
		errors.Is(err, registry.ErrDigestInvalid), errors.Is(err, registry.ErrNameInvalid),
		errors.Is(err, registry.ErrTagInvalid), errors.Is(err, registry.ErrTooLarge),
		errors.Is(err, assembler.ErrDigestMismatch), errors.Is(err, errBadBlob):
		return http.StatusBadRequest
	case errors.Is(err, registry.ErrInsufficientStorage):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

var errBadBlob = errors.New("replication: blob does not match its recipe")

func (rc *Receiver) blobsCheck(w http.ResponseWriter, r *http.Request) {
	var req blobsCheckRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Blobs) > maxCheckBlobs {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("more than %d blobs", maxCheckBlobs))
		return
	}
	resp := blobsCheckResponse{Missing: []digest.Digest{}}
	for _, d := range req.Blobs {
		if _, err := rc.graph.Blob(d); errors.Is(err, refgraph.ErrNotFound) {
			resp.Missing = append(resp.Missing, d)
		} else if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (rc *Receiver) chunksCheck(w http.ResponseWriter, r *http.Request) {
	var req chunksCheckRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.IDs) > maxCheckIDs {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("more than %d chunk ids", maxCheckIDs))
		return
	}
	ids, err := parseIDs(req.IDs)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	resp := chunksCheckResponse{Missing: []string{}}
	for i, id := range ids {
		ok, err := rc.graph.HasChunk(id)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		if !ok {
			resp.Missing = append(resp.Missing, req.IDs[i])
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// chunks takes chunks in stored form: each is verified against its id
// before it is written, and indexed (with no reference) after its pack
// is durable. A chunk that fails verification ends the request with 400;
// the chunks before it are kept.
func (rc *Receiver) chunks(w http.ResponseWriter, r *http.Request) {
	frames, err := readFrames(http.MaxBytesReader(w, r.Body, maxChunksBody+maxChunksBody/1024*frameHeaderLen), rc.store.MaxChunk(), maxChunksBody)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	todo := frames[:0]
	for _, c := range frames {
		if ok, err := rc.graph.HasChunk(c.ID); err != nil {
			writeErr(w, statusOf(err), err)
			return
		} else if !ok {
			todo = append(todo, c)
		}
	}
	written, werr := rc.store.WriteStored(r.Context(), todo)
	if len(written) > 0 {
		if err := rc.graph.RecordChunks(written); err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
	}
	if werr != nil {
		rc.log.Warn("replication: rejected a chunk", "err", werr)
		writeErr(w, statusOf(werr), werr)
		return
	}
	writeJSON(w, http.StatusOK, chunksResponse{Stored: len(written)})
}

// blob indexes a blob from its recipe once it is verified: every chunk
// indexed, and the bytes the recipe makes (re-encoded, for a layer) of
// the right size and digest.
func (rc *Receiver) blob(w http.ResponseWriter, r *http.Request) {
	var req blobRequest
	if !readJSON(w, r, &req) {
		return
	}
	if err := registry.ValidateName(req.Repo); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	if req.LinkOnly {
		rc.linkOnly(w, req.Repo, req.Blob.Digest)
		return
	}
	b, err := fromWire(req.Blob)
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: %w", errBadBlob, err))
		return
	}
	if have, err := rc.graph.Blob(b.Digest); err == nil {
		if have.Size != b.Size {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%w: blob %s is %d bytes here, recipe says %d", errBadBlob, b.Digest, have.Size, b.Size))
			return
		}
		rc.commitBlob(w, req.Repo, b)
		return
	} else if !errors.Is(err, refgraph.ErrNotFound) {
		writeErr(w, statusOf(err), err)
		return
	}
	var missing []string
	for _, c := range b.Chunks {
		if ok, err := rc.graph.HasChunk(c.ID); err != nil {
			writeErr(w, statusOf(err), err)
			return
		} else if !ok {
			missing = append(missing, c.ID.String())
		}
	}
	if len(missing) > 0 {
		writeJSON(w, http.StatusConflict, blobResponse{MissingChunks: missing})
		return
	}
	if err := rc.verifyBlob(r.Context(), req.Repo, b); err != nil {
		rc.log.Warn("replication: rejected a blob", "digest", b.Digest, "err", err)
		writeErr(w, statusOf(err), err)
		return
	}
	rc.commitBlob(w, req.Repo, b)
}

// linkOnly links a blob the receiver has into repo.
func (rc *Receiver) linkOnly(w http.ResponseWriter, repo string, d digest.Digest) {
	if err := d.Validate(); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	b, err := rc.graph.Blob(d)
	if errors.Is(err, refgraph.ErrNotFound) {
		writeErr(w, http.StatusConflict, fmt.Errorf("blob %s: %w", d, err))
		return
	}
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	rc.commitBlob(w, repo, b)
}

func (rc *Receiver) commitBlob(w http.ResponseWriter, repo string, b refgraph.Blob) {
	if err := rc.graph.CommitReplicatedBlob(repo, b); err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, blobResponse{})
}

// verifyBlob rebuilds b from its chunks and checks size and digest; a
// layer of a repository selected for pre-encoding is rebuilt through the
// layer cache, where its encoding stays.
func (rc *Receiver) verifyBlob(ctx context.Context, repo string, b refgraph.Blob) error {
	select {
	case rc.verify <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-rc.verify }()
	if !b.Digest.Algorithm().Available() {
		return fmt.Errorf("%w: digest algorithm %s", errBadBlob, b.Digest.Algorithm())
	}
	asm := rc.asm
	if rc.cached != nil && b.Layout != nil && rc.pre(repo) {
		asm = rc.cached
	}
	r, err := asm.Open(ctx, assembler.Blob{Digest: b.Digest, Size: b.Size, Chunks: b.Chunks, Layout: b.Layout}, 0, b.Size)
	if err != nil {
		return fmt.Errorf("%w: %w", errBadBlob, err)
	}
	defer r.Close()
	dg := b.Digest.Algorithm().Digester()
	n, err := io.Copy(dg.Hash(), r)
	if err != nil {
		return fmt.Errorf("%w: blob %s: %w", errBadBlob, b.Digest, err)
	}
	if n != b.Size || dg.Digest() != b.Digest {
		return fmt.Errorf("%w: blob %s: rebuilt %d bytes with digest %s", errBadBlob, b.Digest, n, dg.Digest())
	}
	return nil
}

func (rc *Receiver) event(w http.ResponseWriter, r *http.Request) {
	var req eventRequest
	if !readJSON(w, r, &req) {
		return
	}
	e := req.Event
	if err := registry.ValidateName(e.Repo); err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	var resp eventResponse
	var err error
	switch e.Kind {
	case refgraph.EventPut:
		resp.Tagged, err = rc.reg.PutReplicatedManifest(r.Context(), e.Repo, e.Digest, e.MediaType, req.Manifest, e.Tag, e.Stamp)
		resp.Applied = err == nil
	case refgraph.EventDelete:
		if err = e.Digest.Validate(); err == nil {
			resp.Applied, err = rc.graph.ApplyReplicatedDelete(e.Repo, e.Digest)
		}
	case refgraph.EventUntag:
		if err = registry.ValidateTag(e.Tag); err == nil {
			resp.Applied, err = rc.graph.ApplyReplicatedUntag(e.Repo, e.Tag, e.Stamp)
		}
	default:
		writeErr(w, http.StatusBadRequest, fmt.Errorf("unknown event kind %q", e.Kind))
		return
	}
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
