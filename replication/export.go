package replication

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// The pull side of the protocol, for a peer that pulls through this node
// (PeerFallback): a blob's recipe, and the chunks of a blob it lacks, as
// stored. Both name the repository, and answer only for blobs linked
// into it, so they reveal nothing a pull of that repository would not.
const (
	pathRecipe    = PathPrefix + "recipe"     // GET ?repo=R&digest=D -> wireBlob
	pathChunksGet = PathPrefix + "chunks/get" // POST chunksGetRequest -> frames
)

type chunksGetRequest struct {
	Repo   string        `json:"repo"`
	Digest digest.Digest `json:"digest"`
	IDs    []string      `json:"ids"`
}

// linkedBlob returns blob d if repo links it (a blob or a manifest).
func (rc *Receiver) linkedBlob(repo string, d digest.Digest) (refgraph.Blob, error) {
	if err := d.Validate(); err != nil {
		return refgraph.Blob{}, fmt.Errorf("%w: %w", errBadBlob, err)
	}
	ok, err := rc.graph.Linked(repo, d)
	if err != nil {
		return refgraph.Blob{}, err
	}
	if !ok {
		if _, err := rc.graph.Manifest(repo, d); err != nil {
			return refgraph.Blob{}, err
		}
	}
	return rc.graph.Blob(d)
}

func (rc *Receiver) recipe(w http.ResponseWriter, r *http.Request) {
	repo, d := r.URL.Query().Get("repo"), digest.Digest(r.URL.Query().Get("digest"))
	b, err := rc.linkedBlob(repo, d)
	switch {
	case errors.Is(err, refgraph.ErrNotFound):
		writeErr(w, http.StatusNotFound, fmt.Errorf("blob %s not in %s", d, repo))
		return
	case err != nil:
		writeErr(w, statusOf(err), err)
		return
	case b.Kind == refgraph.KindPending:
		// Not chunked yet: the caller takes it whole over /v2/.
		writeErr(w, http.StatusConflict, fmt.Errorf("blob %s is not converted yet", d))
		return
	}
	writeJSON(w, http.StatusOK, toWire(b))
}

func (rc *Receiver) chunksGet(w http.ResponseWriter, r *http.Request) {
	var req chunksGetRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.IDs) > maxCheckIDs {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("more than %d chunk ids", maxCheckIDs))
		return
	}
	b, err := rc.linkedBlob(req.Repo, req.Digest)
	if errors.Is(err, refgraph.ErrNotFound) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("blob %s not in %s", req.Digest, req.Repo))
		return
	}
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	inBlob := make(map[chunkstore.ID]bool, len(b.Chunks))
	for _, c := range b.Chunks {
		inBlob[c.ID] = true
	}
	ids, err := parseIDs(req.IDs)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	for _, id := range ids {
		if !inBlob[id] {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("chunk %s is not in blob %s", id, req.Digest))
			return
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	var buf []byte
	for i, id := range ids {
		c, err := rc.graph.Chunk(id)
		if err == nil {
			var sc chunkstore.StoredChunk
			if sc, err = rc.store.ReadStored(r.Context(), c.Loc, id, buf); err == nil {
				buf = sc.Stored
				err = writeFrame(w, sc)
			}
		}
		if err != nil {
			if i == 0 {
				writeErr(w, statusOf(err), err)
			} // else: the body is cut short; the caller's frame reader fails
			rc.log.Warn("replication: serving chunks", "err", err)
			return
		}
	}
}
