package refgraph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/cockroachdb/pebble/v2"
	"github.com/opencontainers/go-digest"
)

// checkInMemory is Check as it was before it streamed (commit 883e5d9),
// kept here as the benchmarks' baseline: it recounts under the writer
// mutex, holding every count in Go maps.
func (g *Graph) checkInMemory(repair bool) (*CheckReport, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := &txn{b: g.db.NewIndexedBatch(), stats: Stats{}, now: g.now()}
	defer t.b.Close()
	r := &CheckReport{}
	fix := func(key, value []byte) error {
		if !repair {
			return nil
		}
		if value == nil {
			return t.del(key)
		}
		return t.set(key, value)
	}
	iter := func(prefix string, fn func(k, v []byte) error) error {
		it, err := g.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			if err := fn(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		return it.Close()
	}
	stampSet := func(prefix string) (map[string]bool, error) {
		set := map[string]bool{}
		err := iter(prefix, func(k, _ []byte) error { set[string(k[len(prefix):])] = true; return nil })
		return set, err
	}

	// Links and manifests: blob references and use counts.
	blobRefs := map[digest.Digest]int64{}
	usage := map[string]int64{} // repo \x00 digest
	links := map[string]bool{}  // repo \x00 digest, blob links only
	repos := map[string]bool{}
	if err := iter(prefixLink, func(k, _ []byte) error {
		repo, d, err := splitRepoDigest(string(k[len(prefixLink):]))
		if err != nil {
			return err
		}
		r.Links++
		blobRefs[d]++
		links[repo+sep+string(d)] = true
		repos[repo] = true
		return nil
	}); err != nil {
		return nil, err
	}
	if err := iter(prefixMan, func(k, v []byte) error {
		repo, d, err := splitRepoDigest(string(k[len(prefixMan):]))
		if err != nil {
			return err
		}
		var m Manifest
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("refgraph: manifest %q: %w", k, err)
		}
		blobRefs[d]++
		repos[repo] = true
		for _, ref := range m.Refs {
			usage[repo+sep+string(ref)]++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Repositories are counted by their r/ keys: one stays listed after GC
	// reaped its last link (as in distribution's catalog).
	if err := iter(prefixRepo, func(k, _ []byte) error {
		t.stats.Repos++
		delete(repos, string(k[len(prefixRepo):]))
		return nil
	}); err != nil {
		return nil, err
	}
	for repo := range repos {
		r.problem(false, "repository %q has links or manifests but no catalog entry", repo)
		if err := fix(repoKey(repo), []byte{}); err != nil {
			return nil, err
		}
		t.stats.Repos++
	}

	// Blobs: refs against the links, unreferenced stamps, chunk counts.
	unref, err := stampSet(prefixUnref)
	if err != nil {
		return nil, err
	}
	chunkRefs := map[chunkstore.ID]int64{}
	encodings := map[string]int64{}
	if err := iter(prefixBlob, func(k, v []byte) error {
		d := digest.Digest(k[len(prefixBlob):])
		bv, err := decodeBlob(v)
		if err != nil {
			return err
		}
		r.Blobs++
		if want := blobRefs[d]; bv.refs != want {
			r.problem(false, "blob %s: refs %d, links %d", d, bv.refs, want)
			bv.refs = want
			if err := fix(bytes.Clone(k), bv.encode()); err != nil {
				return err
			}
		}
		delete(blobRefs, d)
		if zero := bv.refs == 0; zero != unref[string(d)] {
			r.problem(false, "blob %s: refs %d, unreferenced stamp %v", d, bv.refs, unref[string(d)])
			if zero {
				err = fix(unrefKey(d), encodeTime(t.now))
			} else {
				err = fix(unrefKey(d), nil)
			}
			if err != nil {
				return err
			}
		}
		delete(unref, string(d))
		for _, c := range bv.chunks {
			chunkRefs[c.ID]++
		}
		t.stats.Blobs++
		t.stats.LogicalBytes += bv.size
		t.stats.LinkedBytes += bv.refs * bv.size
		switch bv.kind {
		case KindPending:
			t.stats.PendingBytes += bv.size
		case KindLayer:
			t.stats.ConvertedBlobs++
			if class, err := encodingClass(bv.layout); err != nil {
				return err
			} else if class != "" {
				encodings[class]++
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for d := range blobRefs {
		r.problem(true, "blob %s: linked or a manifest, but not indexed", d)
	}
	for d := range unref {
		r.problem(false, "unreferenced stamp of a blob not indexed: %s", d)
		if err := fix(unrefKey(digest.Digest(d)), nil); err != nil {
			return nil, err
		}
	}

	// Chunks: refs against the blobs; live bytes per pack; none in a
	// retired or deleted pack.
	type packSum struct{ live, chunks int64 }
	packs := map[string]*packSum{}
	retired, err := stampSet(prefixRetired)
	if err != nil {
		return nil, err
	}
	if err := iter(prefixChunk, func(k, v []byte) error {
		var id chunkstore.ID
		copy(id[:], k[len(prefixChunk):])
		c, err := decodeChunk(id, v)
		if err != nil {
			return err
		}
		r.Chunks++
		if retired[c.Loc.Pack] {
			r.problem(true, "chunk %s: in pack %s, which garbage collection retired", id, c.Loc.Pack)
		}
		if want := chunkRefs[id]; c.Refs != want {
			r.problem(false, "chunk %s: refs %d, blob references %d", id, c.Refs, want)
			c.Refs = want
			if err := fix(bytes.Clone(k), encodeChunk(c)); err != nil {
				return err
			}
		}
		delete(chunkRefs, id)
		ps := packs[c.Loc.Pack]
		if ps == nil {
			ps = &packSum{}
			packs[c.Loc.Pack] = ps
		}
		if c.Refs > 0 {
			ps.live += int64(c.Loc.StoredLen)
			ps.chunks++
			t.stats.Chunks++
			t.stats.ChunkRawBytes += int64(c.Loc.RawLen)
			t.stats.LiveStoredBytes += int64(c.Loc.StoredLen)
		}
		if c.Refs >= 2 {
			t.stats.SharedChunks++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for id := range chunkRefs {
		r.problem(true, "chunk %s: held by a blob, but not indexed", id)
	}

	// Packs.
	if err := iter(prefixPack, func(k, v []byte) error {
		name := string(k[len(prefixPack):])
		p, err := decodePack(name, v)
		if err != nil {
			return err
		}
		r.Packs++
		ps := packs[name]
		if ps == nil {
			ps = &packSum{}
		}
		if p.LiveBytes != ps.live || p.LiveChunks != ps.chunks {
			r.problem(false, "pack %s: live %d bytes in %d chunks, recount %d in %d", name, p.LiveBytes, p.LiveChunks, ps.live, ps.chunks)
			p.LiveBytes, p.LiveChunks = ps.live, ps.chunks
			if err := fix(bytes.Clone(k), encodePack(p)); err != nil {
				return err
			}
		}
		delete(packs, name)
		t.stats.Packs++
		t.stats.PackBytes += p.TotalBytes
		return nil
	}); err != nil {
		return nil, err
	}
	for name := range packs {
		r.problem(true, "pack %s: chunk records point into it, but it is not indexed", name)
	}

	// Use counts and unused-link stamps.
	seenUsage := map[string]bool{}
	if err := iter(prefixUsage, func(k, v []byte) error {
		key := string(k[len(prefixUsage):])
		seenUsage[key] = true
		n, _ := binary.Uvarint(v)
		if want := usage[key]; int64(n) != want {
			r.problem(false, "use count %q: %d, manifests %d", key, n, want)
			var val []byte
			if want > 0 {
				val = binary.AppendUvarint(nil, uint64(want))
			}
			if err := fix(bytes.Clone(k), val); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for key, n := range usage {
		if seenUsage[key] {
			continue
		}
		r.problem(false, "use count %q: missing, manifests %d", key, n)
		if err := fix([]byte(prefixUsage+key), binary.AppendUvarint(nil, uint64(n))); err != nil {
			return nil, err
		}
	}
	unused, err := stampSet(prefixUnused)
	if err != nil {
		return nil, err
	}
	for key := range links {
		repo, d, _ := splitRepoDigest(key)
		n := usage[key]
		var err error
		if (n == 0) != unused[key] {
			r.problem(false, "link %q: used %d times, unused stamp %v", key, n, unused[key])
			if n == 0 {
				err = fix(unusedKey(repo, d), encodeTime(t.now))
			} else {
				err = fix(unusedKey(repo, d), nil)
			}
			if err != nil {
				return nil, err
			}
		}
		delete(unused, key)
	}
	for key := range unused {
		r.problem(false, "unused stamp of a link that does not exist: %q", key)
		if err := fix([]byte(prefixUnused+key), nil); err != nil {
			return nil, err
		}
	}

	// Queue, encodings, counters.
	scheduled, err := stampSet(prefixSchedule)
	if err != nil {
		return nil, err
	}
	if err := iter(prefixQueue, func(k, v []byte) error {
		t.stats.PendingConversions++
		d := digest.Digest(k[len(prefixQueue):])
		var q queueValue
		if err := json.Unmarshal(v, &q); err != nil {
			return fmt.Errorf("refgraph: queue entry %q: %w", k, err)
		}
		sk := string(scheduleKey(q.due(), d)[len(prefixSchedule):])
		if !scheduled[sk] {
			r.problem(false, "queue entry %s has no schedule key", d)
			if err := fix(scheduleKey(q.due(), d), []byte{}); err != nil {
				return err
			}
		}
		delete(scheduled, sk)
		return nil
	}); err != nil {
		return nil, err
	}
	for sk := range scheduled {
		r.problem(false, "schedule key of no queue entry: %q", sk)
		if err := fix([]byte(prefixSchedule+sk), nil); err != nil {
			return nil, err
		}
	}
	if err := iter(prefixFailed, func(_, _ []byte) error { t.stats.FailedConversions++; return nil }); err != nil {
		return nil, err
	}
	if err := iter(prefixEncoding, func(k, v []byte) error {
		class := string(k[len(prefixEncoding):])
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) != encodings[class] {
			r.problem(false, "encoding count %q disagrees with the layers (%d)", class, encodings[class])
			var val []byte
			if n := encodings[class]; n > 0 {
				val = binary.BigEndian.AppendUint64(nil, uint64(n))
			}
			if err := fix(bytes.Clone(k), val); err != nil {
				return err
			}
		}
		delete(encodings, class)
		return nil
	}); err != nil {
		return nil, err
	}
	for class, n := range encodings {
		r.problem(false, "encoding count %q missing (%d layers)", class, n)
		if err := fix([]byte(prefixEncoding+class), binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return nil, err
		}
	}
	if t.stats != g.stats {
		r.problem(false, "counters %+v, recount %+v", g.stats, t.stats)
		if repair {
			st, err := json.Marshal(t.stats)
			if err != nil {
				return nil, err
			}
			if err := t.set([]byte(keyStats), st); err != nil {
				return nil, err
			}
		}
	}
	if repair && !r.OK() {
		if err := t.b.Commit(pebble.Sync); err != nil {
			return nil, fmt.Errorf("refgraph: commit repairs: %w", err)
		}
		g.stats = t.stats
		r.Repaired = true
	}
	return r, nil
}
