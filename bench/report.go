package bench

import (
	"maps"

	"github.com/opencontainers/go-digest"
)

// Report is what an Estimator found; its JSON names are an interface for
// scripts.
type Report struct {
	Chunker ChunkerParams  `json:"chunker"`
	Layouts []LayoutReport `json:"layouts"`
	// Total counts every blob and chunk once over all layouts.
	Total Summary `json:"total"`
}

// ChunkerParams are the chunker settings the estimate used.
type ChunkerParams struct {
	Polynomial  string `json:"polynomial"`
	MinChunk    int    `json:"min_chunk"`
	AverageBits int    `json:"average_bits"`
	MaxChunk    int    `json:"max_chunk"`
	Compression string `json:"compression"` // chunkstore's zstd level name
}

// LayoutReport is one layout's share: what it added to the layouts added
// before it (all of it for the first).
type LayoutReport struct {
	Path string `json:"path"`
	// Seen counts the layout's blobs and manifests that an earlier layout
	// already counted; Missing those its manifests reference but whose
	// files are absent (platforms not pulled, foreign layers).
	Seen    int `json:"already_counted"`
	Missing int `json:"missing"`
	Summary
	// Details lists every blob the layout added (Options.Details).
	Details []BlobReport `json:"blob_details,omitempty"`
}

// Summary counts blobs and bytes in the three stores.
type Summary struct {
	Manifests int `json:"manifests"` // image manifests and indexes
	Blobs     int `json:"blobs"`     // configs, layers and other blobs
	// Layers are blobs that decompress to a tar stream that tar-splits;
	// Reproduced those whose compression an encoder of this build
	// reproduces, which chunkyard stores split.
	Layers     int            `json:"layers"`
	Reproduced int            `json:"reproduced_layers"`
	Encoders   map[string]int `json:"encoders,omitempty"` // reproduced layers by encoding
	// NotReproduced counts the other gzip, zstd and tar blobs by reason.
	NotReproduced map[string]int `json:"not_reproduced,omitempty"`
	ManifestBytes int64          `json:"manifest_bytes"`
	TarBytes      int64          `json:"tar_bytes"` // the layers decompressed

	Plain     Usage `json:"plain"`
	Chunkyard Usage `json:"chunkyard"`
	IdealCDC  Usage `json:"ideal_cdc"`
	// Ratios of plain bytes to the other stores' (0 if nothing is stored).
	PlainOverChunkyard float64 `json:"plain_over_chunkyard"`
	PlainOverIdealCDC  float64 `json:"plain_over_ideal_cdc"`
}

// Usage is what one store keeps.
type Usage struct {
	// Bytes is everything: for plain the blobs and manifests; for a
	// chunked store the chunks as stored and their pack overhead
	// (ChunkOverhead each).
	Bytes       int64 `json:"bytes"`
	Chunks      int64 `json:"chunks"`
	RawBytes    int64 `json:"chunk_raw_bytes"`    // distinct chunks, uncompressed
	StoredBytes int64 `json:"chunk_stored_bytes"` // distinct chunks, zstd or raw
	MeanChunk   int64 `json:"mean_chunk_bytes"`   // RawBytes / Chunks
}

// BlobReport is one blob, with the chunks it added to each chunked store.
type BlobReport struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	Role      string        `json:"role"` // RoleManifest, RoleConfig or RoleLayer
	MediaType string        `json:"media_type,omitempty"`
	Format    string        `json:"format,omitempty"` // gzip, zstd, tar; empty: neither
	Layer     bool          `json:"layer"`
	// Reproduced: chunkyard would store the blob split, re-encoded on
	// pull with Encoding. Why tells why a gzip, zstd or tar blob is not.
	Reproduced   bool   `json:"reproduced"`
	Encoding     string `json:"encoding,omitempty"`
	Why          string `json:"why,omitempty"`
	TarBytes     int64  `json:"tar_bytes,omitempty"`
	HeaderBytes  int64  `json:"header_stream_bytes,omitempty"`
	ContentBytes int64  `json:"content_stream_bytes,omitempty"`
	Chunkyard    Usage  `json:"chunkyard"`
	IdealCDC     Usage  `json:"ideal_cdc"`
	index        int
}

// counts accumulates a Summary.
type counts struct {
	manifests, blobs, layers, reproduced int
	encoders, notReproduced              map[string]int
	manifestBytes, blobBytes, tarBytes   int64
	chunkyard, ideal                     tally
}

func (c *counts) addBlob(r *BlobReport, chunkyard, ideal tally) {
	if r.Role == RoleManifest {
		c.manifests++
		c.manifestBytes += r.Size
	} else {
		c.blobs++
		c.blobBytes += r.Size
	}
	c.chunkyard.add(chunkyard)
	c.ideal.add(ideal)
	if r.Layer {
		c.layers++
		c.tarBytes += r.TarBytes
	}
	switch {
	case r.Reproduced:
		c.reproduced++
		c.encoders = inc(c.encoders, r.Encoding)
	case !r.Layer && r.Format != "":
		c.notReproduced = inc(c.notReproduced, r.Format+": not a splittable tar")
	case r.Layer:
		c.notReproduced = inc(c.notReproduced, r.Format+": no encoder reproduces it")
	}
}

func inc(m map[string]int, k string) map[string]int {
	if m == nil {
		m = map[string]int{}
	}
	m[k]++
	return m
}

func (c *counts) summary() Summary {
	s := Summary{
		Manifests:     c.manifests,
		Blobs:         c.blobs,
		Layers:        c.layers,
		Reproduced:    c.reproduced,
		Encoders:      maps.Clone(c.encoders),
		NotReproduced: maps.Clone(c.notReproduced),
		ManifestBytes: c.manifestBytes,
		TarBytes:      c.tarBytes,
		Plain:         Usage{Bytes: c.manifestBytes + c.blobBytes},
		Chunkyard:     c.chunkyard.usage(),
		IdealCDC:      c.ideal.usage(),
	}
	s.PlainOverChunkyard = ratio(s.Plain.Bytes, s.Chunkyard.Bytes)
	s.PlainOverIdealCDC = ratio(s.Plain.Bytes, s.IdealCDC.Bytes)
	return s
}

// usage prices the chunks.
func (t tally) usage() Usage {
	u := Usage{
		Bytes:       t.stored + t.chunks*ChunkOverhead,
		Chunks:      t.chunks,
		RawBytes:    t.raw,
		StoredBytes: t.stored,
	}
	if t.chunks > 0 {
		u.MeanChunk = t.raw / t.chunks
	}
	return u
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
