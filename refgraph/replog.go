package refgraph

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/opencontainers/go-digest"
)

// The replication outbox. While replication is on (StartOutbox with at
// least one peer), every change a client or GC makes to names (a
// manifest put, with its tag if any; a tag deleted; a manifest deleted)
// appends an Event in the same batch as the change, so an acknowledged
// change cannot be lost to a crash before it is replicated. Each peer has
// a cursor: the last event it acknowledged. An event every cursor has
// passed is trimmed. A manifest put event holds its blobs (the manifest
// and what it names) from garbage collection until trimmed, so a sender
// behind by hours can still ship an image deleted meanwhile.
//
// Changes applied from a peer (the Apply* methods) are not recorded:
// a node replicates what its clients pushed to it, to every peer it
// names (a full mesh), and does not forward.
//
//	v/<seq, 8 bytes BE>           -> Event (JSON)
//	h/<digest>                    -> pending put events holding blob digest (uvarint)
//	\x00repl/seq                  -> last event sequence number assigned (8 bytes BE)
//	\x00repl/peer/<peer>          -> last sequence number the peer acknowledged (8 bytes BE)
const (
	prefixEvent  = "v/"
	prefixHold   = "h/"
	keyReplSeq   = "\x00repl/seq"
	prefixCursor = "\x00repl/peer/"
)

func eventKey(seq uint64) []byte     { return binary.BigEndian.AppendUint64([]byte(prefixEvent), seq) }
func holdKey(d digest.Digest) []byte { return []byte(prefixHold + string(d)) }
func cursorKey(peer string) []byte   { return []byte(prefixCursor + peer) }
func encodeSeq(seq uint64) []byte    { return binary.BigEndian.AppendUint64(nil, seq) }
func decodeSeq(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("refgraph: bad sequence number of %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Event kinds.
const (
	EventPut    = "put"    // manifest stored (Tag set: and tagged)
	EventDelete = "delete" // manifest deleted, with the tags pointing at it
	EventUntag  = "untag"  // tag deleted
)

// Stamp orders tag writes across regions: a hybrid timestamp (wall
// clock, but always past the stamp of the value it replaces) and the
// region that wrote it. The greater stamp wins: later time, and on a tie
// the greater region name.
type Stamp struct {
	Time   int64  `json:"t"`            // unix ns
	Region string `json:"rg,omitempty"` // "" for tags written before replication was on
}

// After reports whether s wins over o.
func (s Stamp) After(o Stamp) bool {
	if s.Time != o.Time {
		return s.Time > o.Time
	}
	return s.Region > o.Region
}

// Event is one change in the outbox.
type Event struct {
	Seq       uint64          `json:"-"`
	Kind      string          `json:"k"`
	Repo      string          `json:"r"`
	Digest    digest.Digest   `json:"d,omitempty"`
	MediaType string          `json:"mt,omitempty"`
	Size      int64           `json:"s,omitempty"`
	Refs      []digest.Digest `json:"refs,omitempty"` // put: what the manifest names
	Tag       string          `json:"tag,omitempty"`
	Stamp     Stamp           `json:"st"`
	At        time.Time       `json:"at"` // when recorded
}

// outbox is the replication state of a Graph.
type outbox struct {
	on     atomic.Bool
	region atomic.Pointer[string]
}

func (o *outbox) regionName() string {
	if r := o.region.Load(); r != nil {
		return *r
	}
	return ""
}

// StartOutbox turns recording on (peers not empty) or off, as this
// node's region. A peer not seen before starts at the current end of the
// log (what was pushed before is not replicated to it); cursors of peers
// no longer named are dropped and what only they held is trimmed.
func (g *Graph) StartOutbox(region string, peers []string) error {
	g.repl.region.Store(&region)
	err := g.update(func(t *txn) error {
		head, err := t.replSeq()
		if err != nil {
			return err
		}
		for _, p := range peers {
			if ok, err := t.has(cursorKey(p)); err != nil {
				return err
			} else if !ok {
				if err := t.set(cursorKey(p), encodeSeq(head)); err != nil {
					return err
				}
			}
		}
		cursors, err := t.cursors()
		if err != nil {
			return err
		}
		for p := range cursors {
			if !slices.Contains(peers, p) {
				if err := t.del(cursorKey(p)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	g.repl.on.Store(len(peers) > 0)
	return g.trimOutbox()
}

// Region is the region name StartOutbox was given.
func (g *Graph) Region() string { return g.repl.regionName() }

func (t *txn) replSeq() (uint64, error) {
	v, err := t.get([]byte(keyReplSeq))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeSeq(v)
}

// cursors returns every peer's cursor.
func (t *txn) cursors() (map[string]uint64, error) {
	prefix := []byte(prefixCursor)
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for it.First(); it.Valid(); it.Next() {
		seq, err := decodeSeq(it.Value())
		if err != nil {
			it.Close()
			return nil, err
		}
		out[string(it.Key()[len(prefix):])] = seq
	}
	return out, it.Close()
}

// record appends an event to the outbox, in the batch, if replication is
// on and the batch is not applying a peer's change.
func (t *txn) record(e Event) error {
	if t.replicated || t.repl == nil || !t.repl.on.Load() {
		return nil
	}
	seq, err := t.replSeq()
	if err != nil {
		return err
	}
	seq++
	e.Seq = seq
	e.At = t.now.UTC()
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := t.set(eventKey(seq), v); err != nil {
		return err
	}
	if err := t.set([]byte(keyReplSeq), encodeSeq(seq)); err != nil {
		return err
	}
	if e.Kind == EventPut {
		for _, d := range holds(e) {
			if err := t.addHold(d, 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// holds lists the blobs a put event keeps from garbage collection.
func holds(e Event) []digest.Digest {
	out := []digest.Digest{e.Digest}
	for _, r := range e.Refs {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func (t *txn) addHold(d digest.Digest, delta int64) error {
	key := holdKey(d)
	var n uint64
	switch v, err := t.get(key); {
	case err == nil:
		var k int
		if n, k = binary.Uvarint(v); k <= 0 {
			return fmt.Errorf("refgraph: bad hold count at %q", key)
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	next := int64(n) + delta
	if next <= 0 {
		return t.del(key)
	}
	return t.set(key, binary.AppendUvarint(nil, uint64(next)))
}

// held reports whether a pending replication needs blob d.
func (t *txn) held(d digest.Digest) (bool, error) { return t.has(holdKey(d)) }

// Held reports whether a pending replication event holds blob d.
func (g *Graph) Held(d digest.Digest) (bool, error) { return g.has(holdKey(d)) }

// tagStamp returns the stamp for a local write of repo's tag: at, or
// just past the stamp of the tag's current value if that is later (a
// peer's clock ahead of ours must not make a later local write lose).
func (t *txn) tagStamp(repo, tag string, at time.Time) (Stamp, error) {
	st := Stamp{Time: at.UnixNano()}
	if t.repl != nil {
		st.Region = t.repl.regionName()
	}
	cur, ok, err := t.tagStampOf(repo, tag)
	if err != nil || !ok {
		return st, err
	}
	if cur.Time >= st.Time {
		st.Time = cur.Time + 1
	}
	return st, nil
}

// tagStampOf returns the stamp of repo's tag, false if there is none.
func (t *txn) tagStampOf(repo, tag string) (Stamp, bool, error) {
	v, err := t.get(tagKey(repo, tag))
	if errors.Is(err, ErrNotFound) {
		return Stamp{}, false, nil
	}
	if err != nil {
		return Stamp{}, false, err
	}
	var tv tagValue
	if err := json.Unmarshal(v, &tv); err != nil {
		return Stamp{}, false, fmt.Errorf("refgraph: tag %s: %w", tag, err)
	}
	return Stamp{Time: tv.Pushed.UnixNano(), Region: tv.Region}, true, nil
}

// TagStamp returns the stamp of repo's tag and the digest it points at.
func (g *Graph) TagStamp(repo, tag string) (Stamp, digest.Digest, error) {
	v, err := g.get(tagKey(repo, tag))
	if err != nil {
		return Stamp{}, "", fmt.Errorf("tag %s: %w", tag, err)
	}
	var tv tagValue
	if err := json.Unmarshal(v, &tv); err != nil {
		return Stamp{}, "", fmt.Errorf("refgraph: tag %s: %w", tag, err)
	}
	return Stamp{Time: tv.Pushed.UnixNano(), Region: tv.Region}, tv.Digest, nil
}

// OutboxEvents returns up to n events peer has not acknowledged, oldest
// first.
func (g *Graph) OutboxEvents(peer string, n int) ([]Event, error) {
	v, err := g.get(cursorKey(peer))
	if err != nil {
		return nil, fmt.Errorf("replication peer %s: %w", peer, err)
	}
	cursor, err := decodeSeq(v)
	if err != nil {
		return nil, err
	}
	it, err := g.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(cursor + 1), UpperBound: prefixEnd([]byte(prefixEvent))})
	if err != nil {
		return nil, fmt.Errorf("refgraph: iterate: %w", err)
	}
	defer it.Close()
	var out []Event
	for it.First(); it.Valid() && len(out) < n; it.Next() {
		var e Event
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("refgraph: event %x: %w", it.Key(), err)
		}
		e.Seq = binary.BigEndian.Uint64(it.Key()[len(prefixEvent):])
		out = append(out, e)
	}
	return out, it.Error()
}

// OutboxState is a peer's position in the outbox.
type OutboxState struct {
	Peer    string    `json:"peer"`
	Pending uint64    `json:"pending_events"`   // events not acknowledged
	Oldest  time.Time `json:"oldest,omitempty"` // when the oldest of them was recorded; zero if none
}

// Outbox returns every peer's position.
func (g *Graph) Outbox() ([]OutboxState, error) {
	var out []OutboxState
	err := g.view(func(t *txn) error {
		head, err := t.replSeq()
		if err != nil {
			return err
		}
		cursors, err := t.cursors()
		if err != nil {
			return err
		}
		for p, c := range cursors {
			st := OutboxState{Peer: p, Pending: head - c}
			if st.Pending > 0 {
				if v, err := t.get(eventKey(c + 1)); err == nil {
					var e Event
					if json.Unmarshal(v, &e) == nil {
						st.Oldest = e.At
					}
				}
			}
			out = append(out, st)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b OutboxState) int {
		if a.Peer < b.Peer {
			return -1
		}
		if a.Peer > b.Peer {
			return 1
		}
		return 0
	})
	return out, err
}

// AckEvents records that peer has applied every event up to seq, and
// trims what every peer has.
func (g *Graph) AckEvents(peer string, seq uint64) error {
	err := g.update(func(t *txn) error {
		v, err := t.get(cursorKey(peer))
		if err != nil {
			return fmt.Errorf("replication peer %s: %w", peer, err)
		}
		cur, err := decodeSeq(v)
		if err != nil || seq <= cur {
			return err
		}
		return t.set(cursorKey(peer), encodeSeq(seq))
	})
	if err != nil {
		return err
	}
	return g.trimOutbox()
}

// trimOutbox deletes the events every peer acknowledged, releasing their
// holds, a bounded number per batch.
func (g *Graph) trimOutbox() error {
	for {
		more := false
		err := g.update(func(t *txn) error {
			cursors, err := t.cursors()
			if err != nil {
				return err
			}
			head, err := t.replSeq()
			if err != nil {
				return err
			}
			low := head // no peer: everything goes
			for _, c := range cursors {
				low = min(low, c)
			}
			prefix := []byte(prefixEvent)
			it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: eventKey(low + 1)})
			if err != nil {
				return err
			}
			var done []Event
			for it.First(); it.Valid(); it.Next() {
				if len(done) == 256 {
					more = true
					break
				}
				var e Event
				if err := json.Unmarshal(it.Value(), &e); err != nil {
					it.Close()
					return fmt.Errorf("refgraph: event %x: %w", it.Key(), err)
				}
				e.Seq = binary.BigEndian.Uint64(it.Key()[len(prefix):])
				done = append(done, e)
			}
			if err := it.Close(); err != nil {
				return err
			}
			for _, e := range done {
				if e.Kind == EventPut {
					for _, d := range holds(e) {
						if err := t.addHold(d, -1); err != nil {
							return err
						}
					}
				}
				if err := t.del(eventKey(e.Seq)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}

// RecordChunks indexes chunks received from a peer (written by
// chunkstore's WriteStored, verified) with no references yet, so that a
// blob committed after them finds them. Chunks indexed already are left
// alone (their written copy is dead pack bytes).
func (g *Graph) RecordChunks(chunks []chunkstore.Chunk) error {
	return g.update(func(t *txn) error {
		if err := t.addWritten(chunks); err != nil {
			return err
		}
		for _, c := range chunks {
			if ok, err := t.has(chunkKey(c.ID)); err != nil || ok {
				if err != nil {
					return err
				}
				continue
			}
			if err := t.addChunkRef(c.ID, 0, c.Loc); err != nil {
				return err
			}
		}
		return nil
	})
}

// CommitReplicatedBlob indexes blob b, received from a peer and verified
// against its digest, from chunks already indexed, and links it into
// repo. If the blob is indexed already, it is only linked. ErrChunkMissing
// says a chunk is not (or no longer) indexed: send it again.
func (g *Graph) CommitReplicatedBlob(repo string, b Blob) error {
	return g.update(func(t *txn) error {
		t.replicated = true
		exists, err := t.has(blobKey(b.Digest))
		if err != nil {
			return err
		}
		if !exists {
			if b.Kind != KindOpaque && b.Kind != KindLayer || (b.Kind == KindLayer) != (b.Layout != nil) {
				return fmt.Errorf("refgraph: blob %s: bad kind %d for a replicated blob", b.Digest, b.Kind)
			}
			for _, c := range b.Chunks {
				if err := t.addChunkRef(c.ID, 1, nil); err != nil {
					return fmt.Errorf("blob %s: %w", b.Digest, err)
				}
			}
			bv := blobValue{size: b.Size, kind: b.Kind, chunks: b.Chunks, layout: b.Layout}
			if b.Kind == KindLayer {
				t.stats.ConvertedBlobs++
				if err := t.countEncoding(b.Layout, 1); err != nil {
					return err
				}
			}
			if err := t.set(blobKey(b.Digest), bv.encode()); err != nil {
				return err
			}
			t.stats.Blobs++
			t.stats.LogicalBytes += b.Size
		}
		return t.linkBlob(repo, b.Digest)
	})
}

// PutReplicatedManifest stores a manifest received from a peer, like
// PutManifest but without an outbox event, and sets tag (if not empty)
// only if stamp wins over the tag's current stamp (Stamp.After). It
// reports whether the tag was set.
func (g *Graph) PutReplicatedManifest(repo string, m Manifest, tag string, stamp Stamp, chunks []chunkstore.Chunk) (tagged bool, err error) {
	err = g.update(func(t *txn) error {
		t.replicated = true
		tagged = false
		if tag != "" {
			cur, ok, err := t.tagStampOf(repo, tag)
			if err != nil {
				return err
			}
			tagged = !ok || stamp.After(cur)
		}
		setTag := ""
		if tagged {
			setTag = tag
		}
		return t.putManifest(repo, m, setTag, &stamp, chunks)
	})
	return tagged, err
}

// PutManifestUnrecorded is PutManifest without an outbox event: for a
// copy of content from elsewhere (a pull through an upstream or a peer).
func (g *Graph) PutManifestUnrecorded(repo string, m Manifest, tag string, chunks []chunkstore.Chunk) error {
	return g.update(func(t *txn) error {
		t.replicated = true
		return t.putManifest(repo, m, tag, nil, chunks)
	})
}

// ApplyReplicatedUntag deletes repo's tag as a peer did, if the peer's
// stamp wins over the tag's current one. It reports whether it did.
func (g *Graph) ApplyReplicatedUntag(repo, tag string, stamp Stamp) (bool, error) {
	done := false
	err := g.update(func(t *txn) error {
		t.replicated = true
		cur, ok, err := t.tagStampOf(repo, tag)
		if err != nil || !ok || !stamp.After(cur) {
			return err
		}
		done = true
		return t.del(tagKey(repo, tag))
	})
	return done, err
}

// ApplyReplicatedDelete deletes manifest d of repo as a peer did; false
// if it is not there.
func (g *Graph) ApplyReplicatedDelete(repo string, d digest.Digest) (bool, error) {
	done := false
	err := g.update(func(t *txn) error {
		t.replicated = true
		if ok, err := t.has(manKey(repo, d)); err != nil || !ok {
			return err
		}
		done = true
		return t.deleteManifest(repo, d)
	})
	return done, err
}
