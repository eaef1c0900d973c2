package refgraph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// What garbage collection keeps in the index (see doc.go): use counts of
// manifest references per repository, and the time each candidate for
// reclaiming became one, so that a run never scans what is alive.
const (
	prefixUsage   = "u/" // u/<repo>\x00<digest> -> manifests of repo naming digest (uvarint)
	prefixUnused  = "y/" // y/<repo>\x00<digest> -> blob link unused by any manifest since (unix ns)
	prefixUnref   = "z/" // z/<digest>           -> blob referenced by no link since (unix ns)
	prefixRetired = "x/" // x/<pack>             -> packState: retired (deleted after a grace period) or deleted (tombstone)
	prefixPulled  = "a/" // a/<repo>\x00<digest> -> manifest last pulled at (unix ns)
)

func usageKey(repo string, d digest.Digest) []byte {
	return []byte(prefixUsage + repo + sep + string(d))
}
func unusedKey(repo string, d digest.Digest) []byte {
	return []byte(prefixUnused + repo + sep + string(d))
}
func unrefKey(d digest.Digest) []byte { return []byte(prefixUnref + string(d)) }
func retiredKey(pack string) []byte   { return []byte(prefixRetired + pack) }
func pulledKey(repo string, d digest.Digest) []byte {
	return []byte(prefixPulled + repo + sep + string(d))
}

func encodeTime(t time.Time) []byte { return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano())) }

func decodeTime(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("refgraph: bad time of %d bytes", len(b))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))), nil
}

// stampIf sets key to the batch's time when on, if not set yet, and
// deletes it when off; wasOn says whether it may be set (saves a read).
func (t *txn) stampIf(on, wasOn bool, key []byte) error {
	switch {
	case on && !wasOn:
		return t.set(key, encodeTime(t.now))
	case !on && wasOn:
		return t.del(key)
	}
	return nil
}

// stampedBefore reports whether key holds a stamp older than cutoff.
func (t *txn) stampedBefore(key []byte, cutoff time.Time) (bool, error) {
	v, err := t.get(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ts, err := decodeTime(v)
	return err == nil && ts.Before(cutoff), err
}

// usage returns how many manifests of repo name d.
func (t *txn) usage(repo string, d digest.Digest) (int64, error) {
	v, err := t.get(usageKey(repo, d))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, k := binary.Uvarint(v)
	if k <= 0 {
		return 0, fmt.Errorf("refgraph: bad use count of %s in %s", d, repo)
	}
	return int64(n), nil
}

// addUsage moves the use count of d in repo; a blob link of repo to d
// becomes unused (stamped) at zero and used again above.
func (t *txn) addUsage(repo string, d digest.Digest, delta int64) error {
	n, err := t.usage(repo, d)
	if err != nil {
		return err
	}
	after := n + delta
	if after < 0 {
		// Manifests stored before use counts existed: nothing to undo.
		after = 0
	}
	if after == 0 {
		err = t.del(usageKey(repo, d))
	} else {
		err = t.set(usageKey(repo, d), binary.AppendUvarint(nil, uint64(after)))
	}
	if err != nil {
		return err
	}
	linked, err := t.has(linkKey(repo, d))
	if err != nil || !linked {
		return err
	}
	return t.stampIf(after == 0, n == 0, unusedKey(repo, d))
}

// linkBlob links blob d into repo; a new link no manifest uses yet is
// stamped unused (pushes upload layers before their manifest: the grace
// period covers that).
func (t *txn) linkBlob(repo string, d digest.Digest) error {
	key := linkKey(repo, d)
	existed, err := t.has(key)
	if err != nil || existed {
		return err
	}
	if err := t.link(key, repo, d); err != nil {
		return err
	}
	n, err := t.usage(repo, d)
	if err != nil || n > 0 {
		return err
	}
	return t.set(unusedKey(repo, d), encodeTime(t.now))
}

func (t *txn) unlinkBlob(repo string, d digest.Digest) error {
	if err := t.unlink(linkKey(repo, d), d); err != nil {
		return err
	}
	return t.del(unusedKey(repo, d))
}

// Usage returns how many manifests of repo name d (config, layer, or a
// manifest of an index).
func (g *Graph) Usage(repo string, d digest.Digest) (int64, error) {
	var n int64
	err := g.view(func(t *txn) (err error) { n, err = t.usage(repo, d); return err })
	return n, err
}

// view runs fn on a read-only batch (no commit).
func (g *Graph) view(fn func(t *txn) error) error {
	t := &txn{b: g.db.NewIndexedBatch()}
	defer t.b.Close()
	return fn(t)
}

// scanStamps calls fn for each key under prefix whose stamp is before
// cutoff, with the key's remainder.
func (g *Graph) scanStamps(prefix string, cutoff time.Time, fn func(rest string) error) error {
	return g.scanStampTimes(prefix, func(rest string, ts time.Time) error {
		if ts.Before(cutoff) {
			return fn(rest)
		}
		return nil
	})
}

// scanStampTimes calls fn for each key under prefix with its stamp.
func (g *Graph) scanStampTimes(prefix string, fn func(rest string, ts time.Time) error) error {
	return g.scan([]byte(prefix), "", func(k, v []byte) (bool, error) {
		ts, err := decodeTime(v)
		if err != nil {
			return false, fmt.Errorf("%q: %w", k, err)
		}
		return true, fn(string(k[len(prefix):]), ts)
	})
}

// UnusedLinksSince calls fn for each blob link no manifest of its
// repository uses, with the time it became unused.
func (g *Graph) UnusedLinksSince(fn func(repo string, d digest.Digest, since time.Time) error) error {
	return g.scanStampTimes(prefixUnused, func(rest string, ts time.Time) error {
		repo, d, err := splitRepoDigest(rest)
		if err != nil {
			return err
		}
		return fn(repo, d, ts)
	})
}

// UnreferencedBlobsSince calls fn for each blob no link references, with
// the time it became unreferenced.
func (g *Graph) UnreferencedBlobsSince(fn func(d digest.Digest, since time.Time) error) error {
	return g.scanStampTimes(prefixUnref, func(rest string, ts time.Time) error { return fn(digest.Digest(rest), ts) })
}

func splitRepoDigest(rest string) (string, digest.Digest, error) {
	i := bytes.LastIndexByte([]byte(rest), 0)
	if i < 0 {
		return "", "", fmt.Errorf("refgraph: bad key %q", rest)
	}
	return rest[:i], digest.Digest(rest[i+1:]), nil
}

// UnusedLinks calls fn for each blob link that no manifest of its
// repository has used since before cutoff.
func (g *Graph) UnusedLinks(cutoff time.Time, fn func(repo string, d digest.Digest) error) error {
	return g.scanStamps(prefixUnused, cutoff, func(rest string) error {
		repo, d, err := splitRepoDigest(rest)
		if err != nil {
			return err
		}
		return fn(repo, d)
	})
}

// RepoDigest names a blob link: a digest in a repository.
type RepoDigest struct {
	Repo   string
	Digest digest.Digest
}

// ReapLink removes repo's link to d if it is still unused since before
// cutoff; false if it is not (used again, or gone).
func (g *Graph) ReapLink(repo string, d digest.Digest, cutoff time.Time) (bool, error) {
	n, err := g.ReapLinks([]RepoDigest{{repo, d}}, cutoff)
	return n == 1, err
}

// ReapLinks removes each link that is still unused since before cutoff,
// many to a batch, and returns how many it removed. A blob whose last
// reference goes counts as unreferenced since its link became unused,
// not since now: it waits out one grace period in all (DeleteBlobs may
// take it in the same run).
func (g *Graph) ReapLinks(links []RepoDigest, cutoff time.Time) (int, error) {
	reaped := 0
	err := g.updateEach(len(links), func(t *txn, i int) error {
		ok, err := t.reapLink(links[i].Repo, links[i].Digest, cutoff)
		if ok {
			reaped++
		}
		return err
	}, nil)
	return reaped, err
}

func (t *txn) reapLink(repo string, d digest.Digest, cutoff time.Time) (bool, error) {
	v, err := t.get(unusedKey(repo, d))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	since, err := decodeTime(v)
	if err != nil || !since.Before(cutoff) {
		return false, err
	}
	if n, err := t.usage(repo, d); err != nil || n > 0 {
		return false, err
	}
	if err := t.unlinkBlob(repo, d); err != nil {
		return false, err
	}
	bv, err := t.blob(d)
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", d, err)
	}
	if bv.refs == 0 {
		return true, t.set(unrefKey(d), encodeTime(since))
	}
	return true, nil
}

// A batch of a bulk operation (ReapLinks, DeleteBlobs) closes after
// maxBatchWrites writes or maxBatchHold of work, whichever comes first:
// thousands of deletions share few fsyncs, and a push waits for the
// writer mutex a few milliseconds at most.
const (
	maxBatchWrites = 2048
	maxBatchHold   = 2 * time.Millisecond
)

// updateEach runs fn for items 0..n-1 in order, in as many batches as it
// takes, each committed durably; after each commit, committed (if set) is
// called with the items of that batch. Between batches it pauses as long
// as the last batch took to build and commit, so that a bulk operation
// leaves at least half of the index's write capacity (the writer mutex,
// the WAL, compactions) to pushes.
func (g *Graph) updateEach(n int, fn func(t *txn, i int) error, committed func(from, to int)) error {
	var pause time.Duration
	for i := 0; i < n; {
		time.Sleep(pause)
		from := i
		batchStart := time.Now()
		err := g.update(func(t *txn) error {
			start := time.Now()
			for i = from; i < n && t.writes < maxBatchWrites && (i == from || time.Since(start) < maxBatchHold); i++ {
				if err := fn(t, i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		pause = time.Since(batchStart)
		if committed != nil {
			committed(from, i)
		}
	}
	return nil
}

// UnreferencedBlobs calls fn for each blob no link has referenced since
// before cutoff.
func (g *Graph) UnreferencedBlobs(cutoff time.Time, fn func(d digest.Digest) error) error {
	return g.scanStamps(prefixUnref, cutoff, func(rest string) error { return fn(digest.Digest(rest)) })
}

// DeleteBlob removes blob d's record if nothing has referenced it since
// before cutoff, releasing its chunks (which stop counting as live) and
// taking it off the conversion queue. It returns the record removed, and
// false if the blob was referenced again or is gone. The caller removes
// what lives outside the index (a pending file, a cached encoding).
func (g *Graph) DeleteBlob(d digest.Digest, cutoff time.Time) (Blob, bool, error) {
	var (
		gone Blob
		ok   bool
	)
	_, err := g.DeleteBlobs([]digest.Digest{d}, cutoff, func(b Blob) { gone, ok = b, true })
	return gone, ok, err
}

// DeleteBlobs is DeleteBlob for many blobs, many to a batch; deleted is
// called with each record removed, once its batch is durable. It returns
// how many it removed.
func (g *Graph) DeleteBlobs(ds []digest.Digest, cutoff time.Time, deleted func(Blob)) (int, error) {
	gone := make([]*Blob, len(ds))
	n := 0
	err := g.updateEach(len(ds), func(t *txn, i int) error {
		b, err := t.deleteBlob(ds[i], cutoff)
		gone[i] = b
		return err
	}, func(from, to int) {
		for _, b := range gone[from:to] {
			if b != nil {
				n++
				if deleted != nil {
					deleted(*b)
				}
			}
		}
	})
	return n, err
}

// deleteBlob removes blob d if unreferenced since before cutoff; nil if
// it is not.
func (t *txn) deleteBlob(d digest.Digest, cutoff time.Time) (*Blob, error) {
	if old, err := t.stampedBefore(unrefKey(d), cutoff); err != nil || !old {
		return nil, err
	}
	bv, err := t.blob(d)
	if errors.Is(err, ErrNotFound) {
		return nil, t.del(unrefKey(d))
	}
	if err != nil || bv.refs > 0 {
		return nil, err
	}
	if held, err := t.held(d); err != nil || held {
		return nil, err // a pending replication needs it: later
	}
	for _, c := range bv.chunks {
		if err := t.addChunkRef(c.ID, -1, nil); err != nil {
			return nil, fmt.Errorf("blob %s: %w", d, err)
		}
	}
	if err := t.dequeue(d); err != nil {
		return nil, err
	}
	switch bv.kind {
	case KindPending:
		t.stats.PendingBytes -= bv.size
	case KindLayer:
		t.stats.ConvertedBlobs--
		if err := t.countEncoding(bv.layout, -1); err != nil {
			return nil, err
		}
	}
	t.stats.Blobs--
	t.stats.LogicalBytes -= bv.size
	if err := t.del(blobKey(d)); err != nil {
		return nil, err
	}
	return &Blob{Digest: d, Size: bv.size, Kind: bv.kind, Chunks: bv.chunks, Layout: bv.layout}, t.del(unrefKey(d))
}

func (t *txn) blob(d digest.Digest) (blobValue, error) {
	v, err := t.get(blobKey(d))
	if err != nil {
		return blobValue{}, err
	}
	return decodeBlob(v)
}

// MovePack switches the index off pack, whose chunks are ids (from its
// trailer), after its live chunks were copied: moved are those at their
// new locations (Store.Rewrite). Every other chunk record still pointing
// into pack must be unreferenced, and is deleted in the same batch, so no
// push can take it up again once the pack is retired. If one was
// referenced again meanwhile, nothing changes and ErrPackInUse says to
// try later. Once readers that looked chunks up before this batch are
// done (a grace period), the retired pack may be deleted and forgotten
// (RetiredPacks, ForgetPack). It returns how many dead records went.
func (g *Graph) MovePack(pack string, ids []chunkstore.ID, moved []chunkstore.Chunk) (int, error) {
	dropped := 0
	err := g.update(func(t *txn) error {
		dropped = 0
		if err := t.addWritten(moved); err != nil {
			return err
		}
		old, err := t.pack(pack)
		if err != nil {
			return err
		}
		isMoved := make(map[chunkstore.ID]bool, len(moved))
		for _, c := range moved {
			isMoved[c.ID] = true
			rec, err := t.chunk(c.ID)
			if err != nil {
				return fmt.Errorf("moving chunk %s: %w", c.ID, err)
			}
			if rec.Loc.Pack != pack {
				continue // not ours to move (written again elsewhere)
			}
			if rec.Refs > 0 {
				np, err := t.pack(c.Loc.Pack)
				if err != nil {
					return err
				}
				old.LiveBytes -= int64(rec.Loc.StoredLen)
				old.LiveChunks--
				np.LiveBytes += int64(c.Loc.StoredLen)
				np.LiveChunks++
				t.stats.LiveStoredBytes += int64(c.Loc.StoredLen) - int64(rec.Loc.StoredLen)
			}
			rec.Loc = *c.Loc
			if err := t.set(chunkKey(c.ID), encodeChunk(rec)); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if isMoved[id] {
				continue
			}
			rec, err := t.chunk(id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if rec.Loc.Pack != pack {
				continue
			}
			if rec.Refs > 0 {
				return fmt.Errorf("pack %s: chunk %s referenced again: %w", pack, id, ErrPackInUse)
			}
			if err := t.del(chunkKey(id)); err != nil {
				return err
			}
			dropped++
		}
		if old.LiveChunks != 0 {
			return fmt.Errorf("pack %s: %d live chunks not moved: %w", pack, old.LiveChunks, ErrPackInUse)
		}
		return t.set(retiredKey(pack), packState{since: t.now}.encode())
	})
	return dropped, err
}

// ErrPackInUse: a pack to retire still holds live chunks.
var ErrPackInUse = errors.New("refgraph: pack still in use")

func (t *txn) chunk(id chunkstore.ID) (Chunk, error) {
	v, err := t.get(chunkKey(id))
	if err != nil {
		return Chunk{}, err
	}
	return decodeChunk(id, v)
}

// A retired pack holds nothing the index needs: MovePack moved its live
// chunks and dropped its dead records, or it is a pack the index never
// knew (RetireUnknownPack). From then on no chunk record may point into it:
// a writer that appended chunks to it before and commits only now gets
// ErrChunkMissing and writes them again elsewhere (addChunkRef). After a
// grace period, for pulls that looked chunks up before, the pack is deleted
// (ForgetPack) and its x/ key stays as a tombstone, still refusing such
// late commits, until ExpireTombstones.

// packState is the value of an x/ key.
type packState struct {
	since   time.Time
	deleted bool // a tombstone: the pack is gone from the backend
}

func (p packState) encode() []byte {
	b := encodeTime(p.since)
	if p.deleted {
		return append(b, 2)
	}
	return append(b, 1)
}

func decodePackState(b []byte) (packState, error) {
	if len(b) != 9 {
		return packState{}, fmt.Errorf("refgraph: bad pack state of %d bytes", len(b))
	}
	ts, err := decodeTime(b[:8])
	return packState{since: ts, deleted: b[8] == 2}, err
}

// scanPackStates calls fn for each x/ key in state deleted (or not) since
// cutoff or before.
func (g *Graph) scanPackStates(deleted bool, cutoff time.Time, fn func(pack string) error) error {
	return g.scan([]byte(prefixRetired), "", func(k, v []byte) (bool, error) {
		st, err := decodePackState(v)
		if err != nil {
			return false, fmt.Errorf("%q: %w", k, err)
		}
		if st.deleted == deleted && !st.since.After(cutoff) {
			return true, fn(string(k[len(prefixRetired):]))
		}
		return true, nil
	})
}

// RetiredPacks calls fn for each pack retired at cutoff or before and not
// deleted yet.
func (g *Graph) RetiredPacks(cutoff time.Time, fn func(pack string) error) error {
	return g.scanPackStates(false, cutoff, fn)
}

// OldestRetired returns when the longest-retired pack not deleted yet was
// retired; ok=false if there is none.
func (g *Graph) OldestRetired() (since time.Time, ok bool, err error) {
	err = g.scan([]byte(prefixRetired), "", func(k, v []byte) (bool, error) {
		st, err := decodePackState(v)
		if err != nil {
			return false, fmt.Errorf("%q: %w", k, err)
		}
		if !st.deleted && (!ok || st.since.Before(since)) {
			since, ok = st.since, true
		}
		return true, nil
	})
	return since, ok, err
}

// ForgetPack records that a retired pack was deleted from the backend: its
// record goes, its x/ key becomes a tombstone.
func (g *Graph) ForgetPack(pack string) error {
	return g.update(func(t *txn) error {
		if ok, err := t.has(packKey(pack)); err != nil {
			return err
		} else if ok {
			p, err := t.pack(pack)
			if err != nil {
				return err
			}
			if p.LiveChunks != 0 {
				return fmt.Errorf("pack %s: %w", pack, ErrPackInUse)
			}
			t.stats.Packs--
			t.stats.PackBytes -= p.TotalBytes
			delete(t.packs, pack)
			if err := t.del(packKey(pack)); err != nil {
				return err
			}
		}
		if err := t.del([]byte(prefixUnknown + pack)); err != nil {
			return err
		}
		return t.set(retiredKey(pack), packState{since: t.now, deleted: true}.encode())
	})
}

// ExpireTombstones removes the tombstones of packs deleted before cutoff
// and returns how many.
func (g *Graph) ExpireTombstones(cutoff time.Time) (int, error) {
	var packs []string
	if err := g.scanPackStates(true, cutoff, func(p string) error { packs = append(packs, p); return nil }); err != nil {
		return 0, err
	}
	if len(packs) == 0 {
		return 0, nil
	}
	return len(packs), g.update(func(t *txn) error {
		for _, p := range packs {
			if err := t.del(retiredKey(p)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Retired reports whether pack is retired or deleted.
func (g *Graph) Retired(pack string) (bool, error) { return g.has(retiredKey(pack)) }

// retired reports whether no chunk record may point into pack any more.
func (t *txn) retired(pack string) (bool, error) { return t.has(retiredKey(pack)) }

// TagRecord is a tag with what it points at.
type TagRecord struct {
	Name   string
	Digest digest.Digest
	Pushed time.Time
}

// TagRecords returns repo's tags in name order.
func (g *Graph) TagRecords(repo string) ([]TagRecord, error) {
	var out []TagRecord
	prefix := tagPrefix(repo)
	err := g.scan(prefix, "", func(k, v []byte) (bool, error) {
		var tv tagValue
		if err := json.Unmarshal(v, &tv); err != nil {
			return false, fmt.Errorf("refgraph: tag %q: %w", k, err)
		}
		out = append(out, TagRecord{Name: string(k[len(prefix):]), Digest: tv.Digest, Pushed: tv.Pushed})
		return true, nil
	})
	return out, err
}

// Manifests returns the manifests linked into repo.
func (g *Graph) Manifests(repo string) ([]Manifest, error) {
	var out []Manifest
	prefix := []byte(prefixMan + repo + sep)
	err := g.scan(prefix, "", func(k, v []byte) (bool, error) {
		m := Manifest{Digest: digest.Digest(k[len(prefix):])}
		if err := json.Unmarshal(v, &m); err != nil {
			return false, fmt.Errorf("refgraph: manifest %q: %w", k, err)
		}
		out = append(out, m)
		return true, nil
	})
	return out, err
}

// RecordPulls stores when manifests were last pulled (not synced: losing
// the last few on a crash only makes retention keep less).
func (g *Graph) RecordPulls(pulls map[[2]string]time.Time) error {
	b := g.db.NewBatch()
	defer b.Close()
	for k, ts := range pulls {
		if err := b.Set(pulledKey(k[0], digest.Digest(k[1])), encodeTime(ts), nil); err != nil {
			return err
		}
	}
	return b.Commit(nil)
}

// LastPulled returns when manifest d of repo was last pulled, zero if
// never (as recorded).
func (g *Graph) LastPulled(repo string, d digest.Digest) (time.Time, error) {
	v, err := g.get(pulledKey(repo, d))
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return decodeTime(v)
}

// DeleteTagIf deletes tag of repo if it still points at d; false if not.
func (g *Graph) DeleteTagIf(repo, tag string, d digest.Digest) (bool, error) {
	done, err := g.DeleteTagsIf(repo, []TagRecord{{Name: tag, Digest: d}})
	return done[0], err
}

// DeleteTagsIf deletes each tag of repo that still points at its digest,
// many to a batch; done[i] says whether tags[i] went.
func (g *Graph) DeleteTagsIf(repo string, tags []TagRecord) (done []bool, err error) {
	done = make([]bool, len(tags))
	err = g.updateEach(len(tags), func(t *txn, i int) error {
		v, err := t.get(tagKey(repo, tags[i].Name))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var tv tagValue
		if err := json.Unmarshal(v, &tv); err != nil {
			return fmt.Errorf("refgraph: tag %s: %w", tags[i].Name, err)
		}
		if tv.Digest != tags[i].Digest {
			return nil
		}
		done[i] = true
		return t.untag(repo, tags[i].Name)
	}, nil)
	return done, err
}

// DeleteUntagged deletes manifest d of repo if no tag points at it and no
// manifest of repo names it (an index); false if it is in use or gone.
func (g *Graph) DeleteUntagged(repo string, d digest.Digest) (bool, error) {
	done, err := g.DeleteUntaggedMany(repo, []digest.Digest{d})
	return done[0], err
}

// DeleteUntaggedMany is DeleteUntagged for many manifests, in order (an
// index before the manifests it frees), many to a batch.
func (g *Graph) DeleteUntaggedMany(repo string, ds []digest.Digest) (done []bool, err error) {
	done = make([]bool, len(ds))
	err = g.updateEach(len(ds), func(t *txn, i int) error {
		d := ds[i]
		if ok, err := t.has(manKey(repo, d)); err != nil || !ok {
			return err
		}
		if n, err := t.usage(repo, d); err != nil || n > 0 {
			return err
		}
		if tags, err := t.tagsOf(repo, d); err != nil || len(tags) > 0 {
			return err
		}
		done[i] = true
		return t.deleteManifest(repo, d)
	}, nil)
	return done, err
}

// prefixUnknown keys packs found in the backend that the index does not
// know (o/<pack> -> first seen, unix ns): written by a push or conversion
// that has not committed yet, or that never will (a crash, an error).
const prefixUnknown = "o/"

// SeenUnknownPack records that pack is in the backend without an index
// record, and returns when that was first seen. If the index knows the
// pack by now it returns known=true and clears the record.
func (g *Graph) SeenUnknownPack(pack string) (first time.Time, known bool, err error) {
	if ok, err := g.has(packKey(pack)); err != nil || ok {
		if stale, _ := g.has([]byte(prefixUnknown + pack)); !stale || err != nil {
			return time.Time{}, ok, err
		}
	}
	err = g.update(func(t *txn) error {
		key := []byte(prefixUnknown + pack)
		if ok, err := t.has(packKey(pack)); err != nil || ok {
			known = ok
			if ok {
				return t.del(key)
			}
			return err
		}
		v, err := t.get(key)
		if errors.Is(err, ErrNotFound) {
			first = t.now
			return t.set(key, encodeTime(t.now))
		}
		if err != nil {
			return err
		}
		first, err = decodeTime(v)
		return err
	})
	return first, known, err
}

// RetireUnknownPack retires a pack the index does not know (as MovePack
// retires a repacked one), so that a later run deletes it after the pack
// grace period and no late commit can point into it; false if the index
// knows the pack by now.
func (g *Graph) RetireUnknownPack(pack string) (bool, error) {
	done := false
	err := g.update(func(t *txn) error {
		if ok, err := t.has(packKey(pack)); err != nil || ok {
			return err
		}
		if ok, err := t.retired(pack); err != nil || ok {
			return err
		}
		done = true
		if err := t.del([]byte(prefixUnknown + pack)); err != nil {
			return err
		}
		return t.set(retiredKey(pack), packState{since: t.now}.encode())
	})
	return done, err
}

// Pack returns pack's record.
func (g *Graph) Pack(name string) (Pack, error) {
	v, err := g.get(packKey(name))
	if err != nil {
		return Pack{}, fmt.Errorf("pack %s: %w", name, err)
	}
	return decodePack(name, v)
}

// Setting returns a stored setting (ErrNotFound if unset). Settings are
// small values the server keeps across restarts, such as the GC
// configuration set over the admin API.
func (g *Graph) Setting(name string) ([]byte, error) { return g.get([]byte(prefixSetting + name)) }

// PutSetting stores a setting durably.
func (g *Graph) PutSetting(name string, value []byte) error {
	return g.update(func(t *txn) error { return t.set([]byte(prefixSetting+name), value) })
}

const prefixSetting = "\x00setting/"

// SetManifestRefs records the references of a manifest stored before
// manifests recorded them (a data dir from an older chunkyard), counting
// the uses of those its repository links. A manifest that has references
// recorded already is left alone. Retention and link reaping then treat
// it like any other.
func (g *Graph) SetManifestRefs(repo string, d digest.Digest, refs []digest.Digest) error {
	return g.update(func(t *txn) error {
		v, err := t.get(manKey(repo, d))
		if errors.Is(err, ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		m := Manifest{Digest: d}
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("refgraph: manifest %s: %w", d, err)
		}
		if len(m.Refs) > 0 {
			return nil
		}
		for _, r := range refs {
			ok, err := t.linked(repo, r)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			m.Refs = append(m.Refs, r)
			if err := t.addUsage(repo, r, 1); err != nil {
				return err
			}
		}
		if len(m.Refs) == 0 {
			return nil
		}
		mv, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return t.set(manKey(repo, d), mv)
	})
}

// AllManifests calls fn for every manifest of every repository.
func (g *Graph) AllManifests(fn func(repo string, m Manifest) error) error {
	return g.scan([]byte(prefixMan), "", func(k, v []byte) (bool, error) {
		repo, d, err := splitRepoDigest(string(k[len(prefixMan):]))
		if err != nil {
			return false, err
		}
		m := Manifest{Digest: d}
		if err := json.Unmarshal(v, &m); err != nil {
			return false, fmt.Errorf("refgraph: manifest %q: %w", k, err)
		}
		return true, fn(repo, m)
	})
}
