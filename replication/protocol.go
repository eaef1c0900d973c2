package replication

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// PathPrefix is where the protocol's endpoints live on a node's address.
const PathPrefix = "/chunkyard/replicate/v1/"

const (
	pathBlobsCheck  = PathPrefix + "blobs/check"
	pathChunksCheck = PathPrefix + "chunks/check"
	pathChunks      = PathPrefix + "chunks"
	pathBlobs       = PathPrefix + "blobs"
	pathEvents      = PathPrefix + "events"
	pathStatus      = PathPrefix + "status"
)

// Limits of one request.
const (
	maxCheckIDs     = 4096     // chunk ids per chunks/check
	maxCheckBlobs   = 4096     // blobs per blobs/check
	maxChunksBody   = 64 << 20 // stored bytes per chunks request (the sender sends up to chunkBatchBytes)
	chunkBatchBytes = 16 << 20
	maxJSONBody     = 64 << 20 // a recipe of a huge layer, a manifest
)

type blobsCheckRequest struct {
	Repo  string          `json:"repo"`
	Blobs []digest.Digest `json:"blobs"`
}

type blobsCheckResponse struct {
	Missing []digest.Digest `json:"missing"` // not indexed on the receiver
}

type chunksCheckRequest struct {
	IDs []string `json:"ids"` // hex
}

type chunksCheckResponse struct {
	Missing []string `json:"missing"`
}

type chunksResponse struct {
	Stored int `json:"stored"`
}

// wireChunk is one chunk of a recipe.
type wireChunk struct {
	ID     string `json:"id"`
	RawLen uint32 `json:"n"`
}

// wireBlob is a blob's recipe (refgraph.Blob without counts).
type wireBlob struct {
	Digest digest.Digest    `json:"digest"`
	Size   int64            `json:"size"`
	Kind   int              `json:"kind"`
	Chunks []wireChunk      `json:"chunks"`
	Layout *refgraph.Layout `json:"layout,omitempty"`
}

type blobRequest struct {
	Repo string   `json:"repo"`
	Blob wireBlob `json:"blob"`
	// LinkOnly: the receiver has the blob (blobs/check said so); link it
	// into Repo, or answer 409 if it went meanwhile.
	LinkOnly bool `json:"link_only,omitempty"`
}

type blobResponse struct {
	// MissingChunks are chunks the receiver does not have (status 409).
	MissingChunks []string `json:"missing_chunks,omitempty"`
}

type eventRequest struct {
	Event    refgraph.Event `json:"event"`
	Manifest []byte         `json:"manifest,omitempty"` // put: the manifest's bytes
}

type eventResponse struct {
	Applied bool `json:"applied"` // the change was made (false: already there, or it lost to a newer stamp)
	Tagged  bool `json:"tagged"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func toWire(b refgraph.Blob) wireBlob {
	w := wireBlob{Digest: b.Digest, Size: b.Size, Kind: b.Kind, Layout: b.Layout, Chunks: make([]wireChunk, len(b.Chunks))}
	for i, c := range b.Chunks {
		w.Chunks[i] = wireChunk{ID: c.ID.String(), RawLen: c.RawLen}
	}
	return w
}

func fromWire(w wireBlob) (refgraph.Blob, error) {
	if err := w.Digest.Validate(); err != nil {
		return refgraph.Blob{}, fmt.Errorf("blob digest: %w", err)
	}
	if w.Size < 0 {
		return refgraph.Blob{}, fmt.Errorf("blob %s: negative size", w.Digest)
	}
	b := refgraph.Blob{Digest: w.Digest, Size: w.Size, Kind: w.Kind, Layout: w.Layout, Chunks: make([]refgraph.ChunkRef, len(w.Chunks))}
	var total int64
	for i, c := range w.Chunks {
		id, err := chunkstore.ParseID(c.ID)
		if err != nil {
			return refgraph.Blob{}, fmt.Errorf("blob %s: %w", w.Digest, err)
		}
		b.Chunks[i] = refgraph.ChunkRef{ID: id, RawLen: c.RawLen}
		total += int64(c.RawLen)
	}
	switch b.Kind {
	case refgraph.KindOpaque:
		if b.Layout != nil || total != b.Size {
			return refgraph.Blob{}, fmt.Errorf("blob %s: opaque recipe of %d bytes for a blob of %d", w.Digest, total, b.Size)
		}
	case refgraph.KindLayer:
		if b.Layout == nil || b.Layout.HeaderChunks < 0 || b.Layout.HeaderChunks > len(b.Chunks) {
			return refgraph.Blob{}, fmt.Errorf("blob %s: bad layer layout", w.Digest)
		}
	default:
		return refgraph.Blob{}, fmt.Errorf("blob %s: kind %d cannot be replicated", w.Digest, b.Kind)
	}
	return b, nil
}

func parseIDs(ss []string) ([]chunkstore.ID, error) {
	out := make([]chunkstore.ID, len(ss))
	for i, s := range ss {
		id, err := chunkstore.ParseID(s)
		if err != nil {
			return nil, err
		}
		out[i] = id
	}
	return out, nil
}

// A chunks request body is a sequence of frames, one per chunk:
//
//	off  len
//	  0   32  chunk ID (sha256 of the raw bytes)
//	 32    4  raw length (big endian)
//	 36    4  stored length (big endian)
//	 40    1  flags: bit 0 = stored bytes are one zstd frame
//	 41    …  stored bytes
const frameHeaderLen = 41

func writeFrame(w io.Writer, c chunkstore.StoredChunk) error {
	var h [frameHeaderLen]byte
	copy(h[:32], c.ID[:])
	binary.BigEndian.PutUint32(h[32:], c.RawLen)
	binary.BigEndian.PutUint32(h[36:], uint32(len(c.Stored)))
	if c.Compressed {
		h[40] = 1
	}
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(c.Stored)
	return err
}

// readFrames reads frames until EOF; maxChunk bounds each chunk and
// maxTotal all stored bytes together.
func readFrames(r io.Reader, maxChunk, maxTotal int) ([]chunkstore.StoredChunk, error) {
	br := bufio.NewReader(r)
	var out []chunkstore.StoredChunk
	total := 0
	for {
		var h [frameHeaderLen]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("frame header: %w", err)
		}
		c := chunkstore.StoredChunk{RawLen: binary.BigEndian.Uint32(h[32:]), Compressed: h[40]&1 != 0}
		copy(c.ID[:], h[:32])
		n := binary.BigEndian.Uint32(h[36:])
		if h[40]&^1 != 0 || n == 0 || int64(n) > int64(maxChunk) || int64(c.RawLen) > int64(maxChunk) {
			return nil, fmt.Errorf("chunk %s: bad frame (flags %#x, stored %d, raw %d)", hex.EncodeToString(c.ID[:]), h[40], n, c.RawLen)
		}
		if total += int(n); total > maxTotal {
			return nil, fmt.Errorf("more than %d stored bytes in one request", maxTotal)
		}
		c.Stored = make([]byte, n)
		if _, err := io.ReadFull(br, c.Stored); err != nil {
			return nil, fmt.Errorf("chunk %s: %w", c.ID, err)
		}
		out = append(out, c)
	}
}
