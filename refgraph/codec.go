package refgraph

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// Key prefixes; see the schema in doc.go.
const (
	sep           = "\x00"
	prefixRepo    = "r/"
	prefixTag     = "t/"
	prefixMan     = "m/"
	prefixLink    = "l/"
	prefixRefer   = "f/"
	prefixBlob    = "b/"
	prefixChunk   = "c/"
	prefixPack    = "p/"
	keyVersion    = "\x00version"
	keyStats      = "\x00stats"
	schemaVersion = "2"
)

func repoKey(repo string) []byte     { return []byte(prefixRepo + repo) }
func tagKey(repo, tag string) []byte { return []byte(prefixTag + repo + sep + tag) }
func tagPrefix(repo string) []byte   { return []byte(prefixTag + repo + sep) }
func manKey(repo string, d digest.Digest) []byte {
	return []byte(prefixMan + repo + sep + string(d))
}
func linkKey(repo string, d digest.Digest) []byte {
	return []byte(prefixLink + repo + sep + string(d))
}
func referPrefix(repo string, subject digest.Digest) []byte {
	return []byte(prefixRefer + repo + sep + string(subject) + sep)
}
func referKey(repo string, subject, d digest.Digest) []byte {
	return append(referPrefix(repo, subject), d...)
}
func blobKey(d digest.Digest) []byte   { return []byte(prefixBlob + string(d)) }
func chunkKey(id chunkstore.ID) []byte { return append([]byte(prefixChunk), id[:]...) }
func packKey(pack string) []byte       { return []byte(prefixPack + pack) }

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// ChunkRef is one chunk of a blob, in order.
type ChunkRef struct {
	ID     chunkstore.ID
	RawLen uint32
}

// Blob kinds: how a blob's chunks make its bytes.
const (
	// KindOpaque: the chunks, concatenated, are the blob.
	KindOpaque = 0
	// KindLayer: a tar layer split by the assembler: the first
	// Layout.HeaderChunks chunks are its header stream, the rest its
	// content stream; zipped back together and compressed as
	// Layout.Encoding says, they make the blob.
	KindLayer = 1
	// KindPending: not chunked yet. The bytes are in a local file as
	// received (fsynced), until the background converter chunks them.
	KindPending = 2
)

// Layout describes a KindLayer blob.
type Layout struct {
	HeaderChunks int
	TarSize      int64  // the uncompressed tar
	Encoding     []byte // the assembler's encoding recipe (codec.Encoding as JSON)
	// Checkpoints let the layer be encoded in segments, several at once
	// or from the middle (codec.Checkpoints); nil: from the start only.
	Checkpoints []byte
}

// Blob is the index record of a stored blob.
type Blob struct {
	Digest digest.Digest
	Size   int64
	Refs   int64
	Kind   int
	Chunks []ChunkRef
	Layout *Layout // KindLayer only
}

type blobValue struct {
	size   int64
	refs   int64
	kind   int
	chunks []ChunkRef
	layout *Layout
}

// Blob record versions: 1 is opaque only; 2 adds the kind and a layout;
// 3 adds the layout's checkpoints.
const blobValueVersion = 3

func (v blobValue) encode() []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(v.chunks)*(32+binary.MaxVarintLen32))
	b = append(b, blobValueVersion)
	b = binary.AppendUvarint(b, uint64(v.size))
	b = binary.AppendUvarint(b, uint64(v.refs))
	b = binary.AppendUvarint(b, uint64(len(v.chunks)))
	for _, c := range v.chunks {
		b = append(b, c.ID[:]...)
		b = binary.AppendUvarint(b, uint64(c.RawLen))
	}
	b = append(b, byte(v.kind))
	if v.kind == KindLayer {
		b = binary.AppendUvarint(b, uint64(v.layout.HeaderChunks))
		b = binary.AppendUvarint(b, uint64(v.layout.TarSize))
		b = binary.AppendUvarint(b, uint64(len(v.layout.Encoding)))
		b = append(b, v.layout.Encoding...)
		b = binary.AppendUvarint(b, uint64(len(v.layout.Checkpoints)))
		b = append(b, v.layout.Checkpoints...)
	}
	return b
}

func decodeBlob(b []byte) (blobValue, error) {
	var v blobValue
	r := reader{b: b}
	version := r.byte()
	if version < 1 || version > 3 {
		return v, fmt.Errorf("refgraph: blob record: unknown version %d", version)
	}
	v.size = int64(r.uvarint())
	v.refs = int64(r.uvarint())
	n := r.uvarint()
	if r.err != nil || n > uint64(len(b)/33+1) {
		return v, fmt.Errorf("refgraph: blob record: bad chunk count")
	}
	v.chunks = make([]ChunkRef, n)
	for i := range v.chunks {
		copy(v.chunks[i].ID[:], r.bytes(32))
		v.chunks[i].RawLen = uint32(r.uvarint())
	}
	if version >= 2 {
		v.kind = int(r.byte())
		switch v.kind {
		case KindOpaque, KindPending:
		case KindLayer:
			v.layout = &Layout{HeaderChunks: int(r.uvarint()), TarSize: int64(r.uvarint())}
			v.layout.Encoding = bytes.Clone(r.bytes(int(r.uvarint())))
			if version >= 3 {
				if n := int(r.uvarint()); n > 0 {
					v.layout.Checkpoints = bytes.Clone(r.bytes(n))
				}
			}
			if v.layout.HeaderChunks > len(v.chunks) {
				return v, fmt.Errorf("refgraph: blob record: %d header chunks of %d", v.layout.HeaderChunks, len(v.chunks))
			}
		default:
			return v, fmt.Errorf("refgraph: blob record: unknown kind %d", v.kind)
		}
	}
	if r.err != nil {
		return v, fmt.Errorf("refgraph: blob record: %w", r.err)
	}
	if len(r.b) != 0 {
		return v, fmt.Errorf("refgraph: blob record: %d trailing bytes", len(r.b))
	}
	return v, nil
}

// Chunk is the index record of a stored chunk.
type Chunk struct {
	ID   chunkstore.ID
	Refs int64
	Loc  chunkstore.Location
}

const chunkValueVersion = 1

func encodeChunk(c Chunk) []byte {
	b := make([]byte, 0, 64+len(c.Loc.Pack))
	b = append(b, chunkValueVersion)
	b = binary.AppendUvarint(b, uint64(c.Refs))
	b = binary.AppendUvarint(b, uint64(len(c.Loc.Pack)))
	b = append(b, c.Loc.Pack...)
	b = binary.AppendUvarint(b, uint64(c.Loc.Offset))
	b = binary.AppendUvarint(b, uint64(c.Loc.StoredLen))
	b = binary.AppendUvarint(b, uint64(c.Loc.RawLen))
	var flags byte
	if c.Loc.Compressed {
		flags |= 1
	}
	return append(b, flags)
}

func decodeChunk(id chunkstore.ID, b []byte) (Chunk, error) {
	c := Chunk{ID: id}
	r := reader{b: b}
	if r.byte() != chunkValueVersion {
		return c, fmt.Errorf("refgraph: chunk record %s: unknown version", id)
	}
	c.Refs = int64(r.uvarint())
	c.Loc.Pack = string(r.bytes(int(r.uvarint())))
	c.Loc.Offset = int64(r.uvarint())
	c.Loc.StoredLen = uint32(r.uvarint())
	c.Loc.RawLen = uint32(r.uvarint())
	c.Loc.Compressed = r.byte()&1 != 0
	if r.err != nil {
		return c, fmt.Errorf("refgraph: chunk record %s: %w", id, r.err)
	}
	return c, nil
}

// Pack is the index record of a pack.
type Pack struct {
	Name       string
	TotalBytes int64 // stored bytes of every chunk written into the pack
	LiveBytes  int64 // stored bytes of the chunks the index points into it
	LiveChunks int64
}

func encodePack(p Pack) []byte {
	b := make([]byte, 0, 3*binary.MaxVarintLen64)
	b = binary.AppendUvarint(b, uint64(p.TotalBytes))
	b = binary.AppendUvarint(b, uint64(p.LiveBytes))
	return binary.AppendUvarint(b, uint64(p.LiveChunks))
}

func decodePack(name string, b []byte) (Pack, error) {
	r := reader{b: b}
	p := Pack{Name: name, TotalBytes: int64(r.uvarint()), LiveBytes: int64(r.uvarint()), LiveChunks: int64(r.uvarint())}
	if r.err != nil {
		return p, fmt.Errorf("refgraph: pack record %s: %w", name, r.err)
	}
	return p, nil
}

// reader decodes a record, remembering the first error.
type reader struct {
	b   []byte
	err error
}

var errShort = fmt.Errorf("record truncated")

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// tagValue and manifestValue are small and rarely hot: JSON keeps them
// readable in a dump and easy to extend.
type tagValue struct {
	Digest digest.Digest `json:"d"`
	Pushed time.Time     `json:"t"`            // the write's stamp time (replog.go)
	Region string        `json:"rg,omitempty"` // the region that wrote it
}
