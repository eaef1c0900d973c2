package refgraph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Error classes; test with errors.Is.
var (
	ErrNotFound     = errors.New("refgraph: not found")
	ErrChunkMissing = errors.New("refgraph: deduplicated chunk is no longer indexed")
	// ErrRefMissing: a manifest names a blob or manifest its repository
	// no longer links.
	ErrRefMissing = errors.New("refgraph: referenced blob or manifest not in the repository")
)

// Graph is the index. All methods are safe for concurrent use.
type Graph struct {
	db  *pebble.DB
	log *slog.Logger

	mu    sync.Mutex // serialises writers
	stats Stats      // counters as committed, guarded by mu
	clock atomic.Pointer[func() time.Time]
	fail  *failure // set when Pebble fails (failure.go)
	repl  outbox   // replication outbox state (replog.go)
}

// SetClock replaces the clock that stamps GC times (tests).
func (g *Graph) SetClock(now func() time.Time) { g.clock.Store(&now) }

// Now is the index's clock: the time its batches stamp (the queue's due
// times, GC stamps).
func (g *Graph) Now() time.Time { return g.now() }

func (g *Graph) now() time.Time {
	if f := g.clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// Stats are the index-wide counters, kept up to date by every batch.
type Stats struct {
	Repos           int64 `json:"repos"`
	Blobs           int64 `json:"blobs"`
	LogicalBytes    int64 `json:"logical_bytes"` // sum of blob sizes, each blob once
	LinkedBytes     int64 `json:"linked_bytes"`  // sum of blob sizes over repository links
	Chunks          int64 `json:"chunks"`
	SharedChunks    int64 `json:"shared_chunks"` // chunks referenced more than once
	ChunkRawBytes   int64 `json:"chunk_raw_bytes"`
	LiveStoredBytes int64 `json:"live_stored_bytes"` // stored bytes of indexed chunks
	Packs           int64 `json:"packs"`
	PackBytes       int64 `json:"pack_bytes"` // stored bytes written into packs, live or not

	PendingConversions int64 `json:"pending_conversions"` // blobs queued for the layer converter
	PendingBytes       int64 `json:"pending_bytes"`       // bytes of blobs not chunked yet (KindPending)
	ConvertedBlobs     int64 `json:"converted_blobs"`     // blobs stored as split layers
	FailedConversions  int64 `json:"failed_conversions"`  // blobs whose conversion was abandoned (kept as received)
}

// Option configures Open.
type Option func(*pebble.Options)

// WithFS opens the index on file system fs instead of the operating
// system's (tests pass a crashable in-memory FS, or one injecting errors).
func WithFS(fs vfs.FS) Option {
	return func(o *pebble.Options) { o.FS = fs }
}

// Open opens (creating if needed) the index in dir.
func Open(dir string, log *slog.Logger, opts ...Option) (*Graph, error) {
	if log == nil {
		log = slog.Default()
	}
	fail := newFailure()
	po := &pebble.Options{Logger: pebbleLogger{log, fail}}
	for _, o := range opts {
		o(po)
	}
	db, err := openPebble(dir, po)
	if err != nil {
		return nil, fmt.Errorf("refgraph: open %s: %w", dir, err)
	}
	g := &Graph{db: db, log: log, fail: fail}
	if err := func() (err error) {
		defer RecoverFailure(&err)
		return g.init()
	}(); err != nil {
		db.Close()
		return nil, err
	}
	return g, nil
}

func (g *Graph) init() error {
	v, err := g.get([]byte(keyVersion))
	switch {
	case errors.Is(err, ErrNotFound):
		b := g.db.NewBatch()
		b.Set([]byte(keyVersion), []byte(schemaVersion), nil)
		st, _ := json.Marshal(Stats{})
		b.Set([]byte(keyStats), st, nil)
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("refgraph: init: %w", err)
		}
		return nil
	case err != nil:
		return err
	case string(v) != schemaVersion:
		if err := g.migrate(string(v)); err != nil {
			return err
		}
	}
	st, err := g.get([]byte(keyStats))
	if err != nil {
		return fmt.Errorf("refgraph: read stats: %w", err)
	}
	if err := json.Unmarshal(st, &g.stats); err != nil {
		return fmt.Errorf("refgraph: decode stats: %w", err)
	}
	return nil
}

// Close flushes and closes the index.
func (g *Graph) Close() (err error) {
	defer RecoverFailure(&err) // a failed index may fail again on the way out
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.Err(); err != nil {
		g.db.Close()
		return err
	}
	if err := g.db.Flush(); err != nil {
		g.db.Close()
		return fmt.Errorf("refgraph: flush: %w", err)
	}
	return g.db.Close()
}

// get returns a copy of the value at key, or ErrNotFound.
func (g *Graph) get(key []byte) ([]byte, error) {
	return getFrom(g.db, key)
}

type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func getFrom(r getter, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("refgraph: get %q: %w", key, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func (g *Graph) has(key []byte) (bool, error) {
	_, err := g.get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// txn is one atomic change: an indexed batch (reads see its own writes)
// plus the counters it moves.
type txn struct {
	b      *pebble.Batch
	stats  Stats
	packs  map[string]*Pack // pack records changed, written at commit
	now    time.Time        // the batch's time, for GC stamps
	writes int              // sets and deletes so far
	// repl is the graph's outbox state; replicated marks a batch applying
	// a peer's change, which records no outbox event (replog.go).
	repl       *outbox
	replicated bool
}

func (t *txn) get(key []byte) ([]byte, error) { return getFrom(t.b, key) }

func (t *txn) has(key []byte) (bool, error) {
	_, err := t.get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (t *txn) set(key, value []byte) error {
	t.writes++
	if err := t.b.Set(key, value, nil); err != nil {
		return fmt.Errorf("refgraph: set %q: %w", key, err)
	}
	return nil
}

func (t *txn) del(key []byte) error {
	t.writes++
	if err := t.b.Delete(key, nil); err != nil {
		return fmt.Errorf("refgraph: delete %q: %w", key, err)
	}
	return nil
}

// update runs fn in one batch and commits it durably. The batch is built
// and applied under the writer mutex (so that counts read and written in
// it are consistent with every batch before), and its fsync is waited for
// outside it: concurrent batches share one WAL sync (Pebble's group
// commit) instead of queueing one fsync each behind the mutex. A batch is
// visible to readers once applied; the WAL keeps batches in order, so a
// batch durable means every batch applied before it is durable too.
func (g *Graph) update(fn func(t *txn) error) error {
	b, err := g.apply(fn)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.SyncWait(); err != nil {
		// The batch is applied but not durable, and Pebble's log cannot
		// take more: the index fails (see ErrIndexFailed).
		err = fmt.Errorf("%w: commit: %w", ErrIndexFailed, err)
		g.fail.set(err)
		return err
	}
	return nil
}

// apply runs fn in a new batch and applies it, without waiting for its
// fsync; the caller waits (SyncWait) and closes the batch.
func (g *Graph) apply(fn func(t *txn) error) (*pebble.Batch, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := &txn{b: g.db.NewIndexedBatch(), stats: g.stats, now: g.now(), repl: &g.repl}
	if err := t.finish(fn); err != nil {
		t.b.Close()
		return nil, err
	}
	if err := g.db.ApplyNoSyncWait(t.b, pebble.Sync); err != nil {
		t.b.Close()
		return nil, fmt.Errorf("refgraph: commit: %w", err)
	}
	g.stats = t.stats
	return t.b, nil
}

// finish runs fn and writes what the batch changed of pack records and
// counters.
func (t *txn) finish(fn func(t *txn) error) error {
	stats := t.stats
	if err := fn(t); err != nil {
		return err
	}
	for name, p := range t.packs {
		if err := t.set(packKey(name), encodePack(*p)); err != nil {
			return err
		}
	}
	if t.stats != stats {
		st, err := json.Marshal(t.stats)
		if err != nil {
			return err
		}
		if err := t.set([]byte(keyStats), st); err != nil {
			return err
		}
	}
	return nil
}

// Stats returns the committed counters.
func (g *Graph) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// HasChunk reports whether the chunk is indexed (so a push can skip it).
func (g *Graph) HasChunk(id chunkstore.ID) (bool, error) { return g.has(chunkKey(id)) }

// Chunk returns the index record of a chunk.
func (g *Graph) Chunk(id chunkstore.ID) (Chunk, error) {
	v, err := g.get(chunkKey(id))
	if err != nil {
		return Chunk{}, fmt.Errorf("chunk %s: %w", id, err)
	}
	return decodeChunk(id, v)
}

// Blob returns the index record of a blob, wherever it is linked.
func (g *Graph) Blob(d digest.Digest) (Blob, error) {
	v, err := g.get(blobKey(d))
	if err != nil {
		return Blob{}, fmt.Errorf("blob %s: %w", d, err)
	}
	bv, err := decodeBlob(v)
	if err != nil {
		return Blob{}, fmt.Errorf("blob %s: %w", d, err)
	}
	return Blob{Digest: d, Size: bv.size, Refs: bv.refs, Kind: bv.kind, Chunks: bv.chunks, Layout: bv.layout}, nil
}

// Linked reports whether repo may read blob d (pushed or mounted there).
func (g *Graph) Linked(repo string, d digest.Digest) (bool, error) { return g.has(linkKey(repo, d)) }

// CommitBlob indexes a blob written to the chunk store and links it into
// repo. chunks is what chunkstore.Store.Write returned: chunks with a
// location were written by this push, the others were found indexed. If
// the blob is indexed already (a concurrent push of the same bytes), the
// chunks written here are left unindexed for repacking to reclaim.
// ErrChunkMissing means a deduplicated chunk vanished meanwhile: write the
// blob again.
func (g *Graph) CommitBlob(repo string, d digest.Digest, size int64, chunks []chunkstore.Chunk) error {
	return g.update(func(t *txn) error {
		if err := t.ensureBlob(d, size, chunks); err != nil {
			return err
		}
		return t.linkBlob(repo, d)
	})
}

// linked reports whether repo links d as a blob or a manifest.
func (t *txn) linked(repo string, d digest.Digest) (bool, error) {
	if ok, err := t.has(linkKey(repo, d)); err != nil || ok {
		return ok, err
	}
	return t.has(manKey(repo, d))
}

// pack returns the pack record being changed by this batch.
func (t *txn) pack(name string) (*Pack, error) {
	if p, ok := t.packs[name]; ok {
		return p, nil
	}
	p := &Pack{Name: name}
	v, err := t.get(packKey(name))
	switch {
	case errors.Is(err, ErrNotFound):
		t.stats.Packs++
	case err != nil:
		return nil, err
	default:
		if *p, err = decodePack(name, v); err != nil {
			return nil, err
		}
	}
	if t.packs == nil {
		t.packs = map[string]*Pack{}
	}
	t.packs[name] = p
	return p, nil
}

// addWritten adds the chunks a Write stored to their packs' totals, once
// each (a chunk repeated within one Write shares its location).
func (t *txn) addWritten(chunks []chunkstore.Chunk) error {
	seen := map[chunkstore.Location]bool{}
	for _, c := range chunks {
		if c.Loc == nil || seen[*c.Loc] {
			continue
		}
		seen[*c.Loc] = true
		p, err := t.pack(c.Loc.Pack)
		if err != nil {
			return err
		}
		p.TotalBytes += int64(c.Loc.StoredLen)
		t.stats.PackBytes += int64(c.Loc.StoredLen)
	}
	return nil
}

// addChunkRef moves a chunk's reference count by delta (+1 or -1). A chunk
// not indexed yet is created at loc; nil loc means the caller found it
// indexed, and ErrChunkMissing says it is gone. A chunk whose count drops
// to zero stays indexed (readers that looked up its blob earlier still find
// it; a later push can take it up again); its bytes stop counting as live.
func (t *txn) addChunkRef(id chunkstore.ID, delta int64, loc *chunkstore.Location) error {
	key := chunkKey(id)
	v, err := t.get(key)
	var rec Chunk
	switch {
	case errors.Is(err, ErrNotFound):
		if loc == nil || delta < 0 {
			return fmt.Errorf("chunk %s: %w", id, ErrChunkMissing)
		}
		// A pack retired by garbage collection takes no new records: the
		// chunk was written there before, and is written again.
		if dead, err := t.retired(loc.Pack); err != nil {
			return err
		} else if dead {
			return fmt.Errorf("chunk %s in retired pack %s: %w", id, loc.Pack, ErrChunkMissing)
		}
		rec = Chunk{ID: id, Loc: *loc}
	case err != nil:
		return err
	default:
		if rec, err = decodeChunk(id, v); err != nil {
			return err
		}
	}
	before := rec.Refs
	rec.Refs += delta
	if rec.Refs < 0 {
		return fmt.Errorf("refgraph: chunk %s: refcount below zero", id)
	}
	if live := func(n int64) int64 { return min(n, 1) }; live(before) != live(rec.Refs) {
		sign := live(rec.Refs) - live(before) // +1: now live, -1: now dead
		p, err := t.pack(rec.Loc.Pack)
		if err != nil {
			return err
		}
		p.LiveBytes += sign * int64(rec.Loc.StoredLen)
		p.LiveChunks += sign
		t.stats.Chunks += sign
		t.stats.ChunkRawBytes += sign * int64(rec.Loc.RawLen)
		t.stats.LiveStoredBytes += sign * int64(rec.Loc.StoredLen)
	}
	switch {
	case before < 2 && rec.Refs >= 2:
		t.stats.SharedChunks++
	case before >= 2 && rec.Refs < 2:
		t.stats.SharedChunks--
	}
	return t.set(key, encodeChunk(rec))
}

// ensureBlob creates the blob record if absent, moving chunk and pack
// counters.
func (t *txn) ensureBlob(d digest.Digest, size int64, chunks []chunkstore.Chunk) error {
	exists, err := t.has(blobKey(d))
	if err != nil {
		return err
	}
	if err := t.addWritten(chunks); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if chunks == nil && size != 0 {
		return fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	refs := make([]ChunkRef, len(chunks))
	for i, c := range chunks {
		refs[i] = ChunkRef{ID: c.ID, RawLen: c.RawLen}
		if err := t.addChunkRef(c.ID, 1, c.Loc); err != nil {
			return fmt.Errorf("blob %s: %w", d, err)
		}
	}
	if err := t.set(blobKey(d), blobValue{size: size, chunks: refs}.encode()); err != nil {
		return err
	}
	t.stats.Blobs++
	t.stats.LogicalBytes += size
	return nil
}

// addBlobRefs moves a blob's reference count by delta.
func (t *txn) addBlobRefs(d digest.Digest, delta int64) error {
	v, err := t.get(blobKey(d))
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	bv, err := decodeBlob(v)
	if err != nil {
		return err
	}
	before := bv.refs
	bv.refs += delta
	if bv.refs < 0 {
		return fmt.Errorf("refgraph: blob %s: refcount below zero", d)
	}
	if err := t.stampIf(bv.refs == 0, before == 0, unrefKey(d)); err != nil {
		return err
	}
	t.stats.LinkedBytes += delta * bv.size
	return t.set(blobKey(d), bv.encode())
}

// link sets a link key (blob or manifest) if absent, counting it once.
func (t *txn) link(key []byte, repo string, d digest.Digest) error {
	ok, err := t.has(key)
	if err != nil || ok {
		return err
	}
	if err := t.set(key, nil); err != nil {
		return err
	}
	if err := t.ensureRepo(repo); err != nil {
		return err
	}
	return t.addBlobRefs(d, 1)
}

func (t *txn) unlink(key []byte, d digest.Digest) error {
	ok, err := t.has(key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: %w", d, ErrNotFound)
	}
	if err := t.del(key); err != nil {
		return err
	}
	return t.addBlobRefs(d, -1)
}

func (t *txn) ensureRepo(repo string) error {
	ok, err := t.has(repoKey(repo))
	if err != nil || ok {
		return err
	}
	t.stats.Repos++
	return t.set(repoKey(repo), nil)
}

// LinkBlob makes an indexed blob readable in repo (a cross-repository
// mount). ErrNotFound if the blob is not indexed.
func (g *Graph) LinkBlob(repo string, d digest.Digest) error {
	return g.update(func(t *txn) error { return t.linkBlob(repo, d) })
}

// UnlinkBlob removes repo's link to a blob. ErrNotFound if not linked.
func (g *Graph) UnlinkBlob(repo string, d digest.Digest) error {
	return g.update(func(t *txn) error { return t.unlinkBlob(repo, d) })
}

// RepoExists reports whether anything was ever pushed to repo.
func (g *Graph) RepoExists(repo string) (bool, error) { return g.has(repoKey(repo)) }

// Manifest is what the index keeps of a manifest linked into a repository.
type Manifest struct {
	Digest       digest.Digest     `json:"-"`
	MediaType    string            `json:"mt"`
	Size         int64             `json:"s"`
	Subject      digest.Digest     `json:"sub,omitempty"`
	ArtifactType string            `json:"at,omitempty"`
	Annotations  map[string]string `json:"an,omitempty"`
	Pushed       time.Time         `json:"t"`
	// Refs are the digests the manifest's descriptors name (config,
	// layers, an index's manifests; not its subject): in its repository
	// they are in use while it is there.
	Refs []digest.Digest `json:"r,omitempty"`
}

// PutManifest stores a manifest in repo in one batch: its blob record
// (created from chunks if new), the repo's link to it, the tag (if not
// empty) and, if it has a subject, its entry in the subject's referrers.
func (g *Graph) PutManifest(repo string, m Manifest, tag string, chunks []chunkstore.Chunk) error {
	return g.update(func(t *txn) error { return t.putManifest(repo, m, tag, nil, chunks) })
}

// putManifest is PutManifest in a batch. stamp is the tag's stamp when
// applying a peer's change; nil: a local write, stamped now (replog.go)
// and recorded in the outbox.
func (t *txn) putManifest(repo string, m Manifest, tag string, stamp *Stamp, chunks []chunkstore.Chunk) error {
	if m.Pushed.IsZero() {
		m.Pushed = t.now.UTC()
	}
	if err := t.ensureBlob(m.Digest, m.Size, chunks); err != nil {
		return err
	}
	key := manKey(repo, m.Digest)
	existed, err := t.has(key)
	if err != nil {
		return err
	}
	if err := t.link(key, repo, m.Digest); err != nil {
		return err
	}
	if !existed {
		for _, r := range m.Refs {
			if ok, err := t.linked(repo, r); err != nil || !ok {
				if err == nil {
					err = fmt.Errorf("%s in %s: %w", r, repo, ErrRefMissing)
				}
				return err
			}
			if err := t.addUsage(repo, r, 1); err != nil {
				return err
			}
		}
	}
	mv, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := t.set(key, mv); err != nil {
		return err
	}
	var st Stamp
	if tag != "" {
		if stamp != nil {
			st = *stamp
		} else if st, err = t.tagStamp(repo, tag, m.Pushed); err != nil {
			return err
		}
		tv, err := json.Marshal(tagValue{Digest: m.Digest, Pushed: time.Unix(0, st.Time).UTC(), Region: st.Region})
		if err != nil {
			return err
		}
		if err := t.set(tagKey(repo, tag), tv); err != nil {
			return err
		}
	}
	if m.Subject != "" {
		desc, err := json.Marshal(referrerDescriptor(m))
		if err != nil {
			return err
		}
		if err := t.set(referKey(repo, m.Subject, m.Digest), desc); err != nil {
			return err
		}
	}
	return t.record(Event{Kind: EventPut, Repo: repo, Digest: m.Digest, MediaType: m.MediaType, Size: m.Size,
		Refs: m.Refs, Tag: tag, Stamp: st})
}

func referrerDescriptor(m Manifest) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       m.Digest,
		Size:         m.Size,
		ArtifactType: m.ArtifactType,
		Annotations:  m.Annotations,
	}
}

// Manifest returns the manifest d as linked into repo.
func (g *Graph) Manifest(repo string, d digest.Digest) (Manifest, error) {
	v, err := g.get(manKey(repo, d))
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", d, err)
	}
	m := Manifest{Digest: d}
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("refgraph: manifest %s: %w", d, err)
	}
	return m, nil
}

// ResolveTag returns the digest tag points at in repo.
func (g *Graph) ResolveTag(repo, tag string) (digest.Digest, error) {
	v, err := g.get(tagKey(repo, tag))
	if err != nil {
		return "", fmt.Errorf("tag %s: %w", tag, err)
	}
	var tv tagValue
	if err := json.Unmarshal(v, &tv); err != nil {
		return "", fmt.Errorf("refgraph: tag %s: %w", tag, err)
	}
	return tv.Digest, nil
}

// DeleteTag removes a tag; the manifest stays.
func (g *Graph) DeleteTag(repo, tag string) error {
	return g.update(func(t *txn) error {
		ok, err := t.has(tagKey(repo, tag))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("tag %s: %w", tag, ErrNotFound)
		}
		return t.untag(repo, tag)
	})
}

// DeleteManifest unlinks manifest d from repo, with every tag of repo
// that points at it and its referrers entry.
func (g *Graph) DeleteManifest(repo string, d digest.Digest) error {
	return g.update(func(t *txn) error { return t.deleteManifest(repo, d) })
}

func (t *txn) deleteManifest(repo string, d digest.Digest) error {
	v, err := t.get(manKey(repo, d))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	var m Manifest
	if err := json.Unmarshal(v, &m); err != nil {
		return fmt.Errorf("refgraph: manifest %s: %w", d, err)
	}
	if err := t.unlink(manKey(repo, d), d); err != nil {
		return err
	}
	for _, r := range m.Refs {
		if err := t.addUsage(repo, r, -1); err != nil {
			return err
		}
	}
	if m.Subject != "" {
		if err := t.del(referKey(repo, m.Subject, d)); err != nil {
			return err
		}
	}
	tags, err := t.tagsOf(repo, d)
	if err != nil {
		return err
	}
	for _, tag := range tags {
		if err := t.del(tagKey(repo, tag)); err != nil {
			return err
		}
	}
	if err := t.del(pulledKey(repo, d)); err != nil {
		return err
	}
	return t.record(Event{Kind: EventDelete, Repo: repo, Digest: d, Stamp: Stamp{Time: t.now.UnixNano()}})
}

// untag deletes repo's tag, recording it in the outbox.
func (t *txn) untag(repo, tag string) error {
	st, err := t.tagStamp(repo, tag, t.now)
	if err != nil {
		return err
	}
	if err := t.del(tagKey(repo, tag)); err != nil {
		return err
	}
	return t.record(Event{Kind: EventUntag, Repo: repo, Tag: tag, Stamp: st})
}

// tagsOf lists the tags of repo that point at d.
func (t *txn) tagsOf(repo string, d digest.Digest) ([]string, error) {
	prefix := tagPrefix(repo)
	it, err := t.b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var tags []string
	for it.First(); it.Valid(); it.Next() {
		var tv tagValue
		if err := json.Unmarshal(it.Value(), &tv); err != nil {
			it.Close()
			return nil, fmt.Errorf("refgraph: tag %q: %w", it.Key(), err)
		}
		if tv.Digest == d {
			tags = append(tags, string(it.Key()[len(prefix):]))
		}
	}
	return tags, it.Close()
}

// scan calls fn for each key under prefix greater than prefix+after, in
// order, until fn returns false.
func (g *Graph) scan(prefix []byte, after string, fn func(key, value []byte) (bool, error)) error {
	lower := prefix
	if after != "" {
		lower = append(bytes.Clone(prefix), after...)
		lower = append(lower, 0) // strictly after
	}
	it, err := g.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("refgraph: iterate: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		more, err := fn(it.Key(), it.Value())
		if err != nil {
			it.Close()
			return err
		}
		if !more {
			break
		}
	}
	return it.Close()
}

// list returns up to n names (all if n < 0) under prefix after last, and
// whether more follow.
func (g *Graph) list(prefix []byte, last string, n int) ([]string, bool, error) {
	var out []string
	more := false
	err := g.scan(prefix, last, func(k, _ []byte) (bool, error) {
		if n >= 0 && len(out) == n {
			more = true
			return false, nil
		}
		out = append(out, string(k[len(prefix):]))
		return true, nil
	})
	return out, more, err
}

// Tags lists repo's tags in lexical order after last, at most n (n < 0:
// all), and whether more follow.
func (g *Graph) Tags(repo, last string, n int) ([]string, bool, error) {
	return g.list(tagPrefix(repo), last, n)
}

// Repos lists repositories in lexical order after last, at most n.
func (g *Graph) Repos(last string, n int) ([]string, bool, error) {
	return g.list([]byte(prefixRepo), last, n)
}

// Referrers lists the manifests in repo whose subject is d.
func (g *Graph) Referrers(repo string, d digest.Digest) ([]ocispec.Descriptor, error) {
	out := []ocispec.Descriptor{}
	err := g.scan(referPrefix(repo, d), "", func(_, v []byte) (bool, error) {
		var desc ocispec.Descriptor
		if err := json.Unmarshal(v, &desc); err != nil {
			return false, fmt.Errorf("refgraph: referrer of %s: %w", d, err)
		}
		out = append(out, desc)
		return true, nil
	})
	return out, err
}

// Packs calls fn for each pack record.
func (g *Graph) Packs(fn func(Pack) error) error {
	prefix := []byte(prefixPack)
	return g.scan(prefix, "", func(k, v []byte) (bool, error) {
		p, err := decodePack(string(k[len(prefix):]), v)
		if err != nil {
			return false, err
		}
		return true, fn(p)
	})
}
