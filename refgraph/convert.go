package refgraph

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// The conversion queue: blobs received as files (KindPending) or stored
// opaque that may be layers, waiting for the background converter to chunk
// them, split if they are layers. A q/ key is set in the batch that
// commits the blob, so a crash loses no entry, and removed in the batch
// that converts it (or gives up on it).

const prefixQueue = "q/"

func queueKey(d digest.Digest) []byte { return []byte(prefixQueue + string(d)) }

type queueValue struct {
	Queued time.Time `json:"t"`
}

// ErrNotOpaque means a blob to convert is no longer stored opaque.
var ErrNotOpaque = errors.New("refgraph: blob is not opaque")

// CommitPending indexes blob d, received and fsynced in a local file but
// not chunked yet (KindPending), links it into repo and queues it for the
// converter, in one batch. If d is indexed already it is only linked: the
// caller then drops its file.
func (g *Graph) CommitPending(repo string, d digest.Digest, size int64) (created bool, err error) {
	err = g.update(func(t *txn) error {
		exists, err := t.has(blobKey(d))
		if err != nil {
			return err
		}
		if !exists {
			created = true
			if err := t.set(blobKey(d), blobValue{size: size, kind: KindPending}.encode()); err != nil {
				return err
			}
			t.stats.Blobs++
			t.stats.LogicalBytes += size
			t.stats.PendingBytes += size
			if err := t.enqueue(d); err != nil {
				return err
			}
		}
		return t.linkBlob(repo, d)
	})
	return created, err
}

func (t *txn) enqueue(d digest.Digest) error {
	v, err := json.Marshal(queueValue{Queued: time.Now().UTC()})
	if err != nil {
		return err
	}
	t.stats.PendingConversions++
	return t.set(queueKey(d), v)
}

func (t *txn) dequeue(d digest.Digest) error {
	ok, err := t.has(queueKey(d))
	if err != nil || !ok {
		return err
	}
	t.stats.PendingConversions--
	return t.del(queueKey(d))
}

// Queued returns up to n blobs waiting for conversion, oldest key first.
func (g *Graph) Queued(n int) ([]digest.Digest, error) {
	names, _, err := g.list([]byte(prefixQueue), "", n)
	out := make([]digest.Digest, len(names))
	for i, s := range names {
		out[i] = digest.Digest(s)
	}
	return out, err
}

// ConvertBlob stores pending or opaque blob d as chunks: chunks is what
// the converter's chunk store Writes returned, layout (nil: opaque) says
// how they make the blob (a layer's header stream first, then its content
// stream). In one batch the new chunks gain a reference, the old ones (of
// an opaque blob) lose one, and the blob leaves the queue. ErrNotFound or
// ErrNotOpaque (already converted): nothing changed but the queue entry,
// and the written chunks count as dead pack bytes.
func (g *Graph) ConvertBlob(d digest.Digest, chunks []chunkstore.Chunk, layout *Layout) error {
	var stale error
	err := g.update(func(t *txn) error {
		if err := t.addWritten(chunks); err != nil {
			return err
		}
		if err := t.dequeue(d); err != nil {
			return err
		}
		v, err := t.get(blobKey(d))
		if errors.Is(err, ErrNotFound) {
			stale = fmt.Errorf("blob %s: %w", d, ErrNotFound)
			return nil
		}
		if err != nil {
			return err
		}
		bv, err := decodeBlob(v)
		if err != nil {
			return err
		}
		if bv.kind == KindLayer {
			stale = fmt.Errorf("blob %s: %w", d, ErrNotOpaque)
			return nil
		}
		refs := make([]ChunkRef, len(chunks))
		for i, c := range chunks {
			refs[i] = ChunkRef{ID: c.ID, RawLen: c.RawLen}
			if err := t.addChunkRef(c.ID, 1, c.Loc); err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
		}
		for _, c := range bv.chunks {
			if err := t.addChunkRef(c.ID, -1, nil); err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
		}
		if bv.kind == KindPending {
			t.stats.PendingBytes -= bv.size
		}
		bv.kind, bv.chunks, bv.layout = KindOpaque, refs, nil
		if layout != nil {
			bv.kind, bv.layout = KindLayer, layout
			t.stats.ConvertedBlobs++
			if err := t.countEncoding(layout, 1); err != nil {
				return err
			}
		}
		return t.set(blobKey(d), bv.encode())
	})
	if err != nil {
		return err
	}
	return stale
}

// GiveUpConversion takes an opaque blob d off the queue, keeping it as it
// is; written are chunks the attempt stored, which count as dead pack
// bytes. (A pending blob must be converted, at least to opaque.)
func (g *Graph) GiveUpConversion(d digest.Digest, written []chunkstore.Chunk) error {
	return g.update(func(t *txn) error {
		if err := t.addWritten(written); err != nil {
			return err
		}
		return t.dequeue(d)
	})
}

// RecordWritten counts chunks a Write stored that no blob will reference
// (a conversion that did not pan out) as dead bytes of their packs.
func (g *Graph) RecordWritten(written []chunkstore.Chunk) error {
	return g.update(func(t *txn) error { return t.addWritten(written) })
}

// prefixEncoding keys count split layers per encoder output class, so
// that a server can refuse to start without an encoder its store needs.
const prefixEncoding = "e/"

// encodingClass names a recipe's encoder output class ("encoder class"),
// read from the fields of the assembler's JSON recipe that name it; ""
// for an uncompressed layer.
func encodingClass(l *Layout) (string, error) {
	var e struct{ Encoder, Version string }
	if err := json.Unmarshal(l.Encoding, &e); err != nil {
		return "", fmt.Errorf("refgraph: unreadable recipe %q: %w", l.Encoding, err)
	}
	if e.Encoder == "" {
		return "", nil
	}
	return e.Encoder + " " + e.Version, nil
}

// countEncoding adds delta to the count of l's encoder class.
func (t *txn) countEncoding(l *Layout, delta int64) error {
	class, err := encodingClass(l)
	if err != nil || class == "" {
		return err
	}
	key := []byte(prefixEncoding + class)
	var n int64
	switch v, err := t.get(key); {
	case err == nil && len(v) == 8:
		n = int64(binary.BigEndian.Uint64(v))
	case err == nil:
		return fmt.Errorf("refgraph: bad count at %q", key)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if n += delta; n <= 0 {
		return t.del(key)
	}
	return t.set(key, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// Encodings returns, per encoder output class ("encoder class"), how many
// split layers need it to be pulled.
func (g *Graph) Encodings() (map[string]int64, error) {
	out := map[string]int64{}
	prefix := []byte(prefixEncoding)
	err := g.scan(prefix, "", func(k, v []byte) (bool, error) {
		if len(v) != 8 {
			return false, fmt.Errorf("refgraph: bad count at %q", k)
		}
		out[string(k[len(prefix):])] = int64(binary.BigEndian.Uint64(v))
		return true, nil
	})
	return out, err
}
