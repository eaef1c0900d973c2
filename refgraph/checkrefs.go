package refgraph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"

	"github.com/opencontainers/go-digest"
)

// Check's phases over names and references: links and manifests, use
// counts and unused stamps, repositories, blobs.

// linksAndManifests scans the blob links (l/) and manifests (m/). Each
// names a blob, whose reference it counts (blobRefs, by digest); each
// reference of a manifest counts a use in its repository (usage, by
// repo\x00digest, the order of u/, l/ and y/).
func (c *checker) linksAndManifests() (blobRefs, usage *sorter, err error) {
	blobRefs, usage = c.newSorter(0, sumCounts), c.newSorter(1, sumCounts)
	err = c.each(prefixLink, func(rest, _ []byte) error {
		_, d, ok := splitKey(rest)
		if !ok {
			c.r.problem(true, "blob link key %q has no digest", rest)
			return nil
		}
		c.r.Links++
		return blobRefs.Add(d, one)
	})
	if err != nil {
		return blobRefs, usage, err
	}
	var key []byte
	err = c.each(prefixMan, func(rest, v []byte) error {
		repo, d, ok := splitKey(rest)
		if !ok {
			c.r.problem(true, "manifest key %q has no digest", rest)
			return nil
		}
		var m struct {
			Refs []digest.Digest `json:"r"`
		}
		if err := json.Unmarshal(v, &m); err != nil {
			c.r.problem(true, "manifest %s in %s does not decode: %v", d, repo, err)
			return nil
		}
		c.r.Manifests++
		if err := blobRefs.Add(d, one); err != nil {
			return err
		}
		for _, ref := range m.Refs {
			key = append(append(append(key[:0], repo...), 0), ref...)
			if err := usage.Add(key, one); err != nil {
				return err
			}
		}
		return nil
	})
	return blobRefs, usage, err
}

// splitKey splits <repo>\x00<digest>.
func splitKey(rest []byte) (repo, d []byte, ok bool) {
	i := bytes.LastIndexByte(rest, 0)
	if i < 0 {
		return nil, nil, false
	}
	return rest[:i], rest[i+1:], true
}

// useCounts joins the uses recounted with the use counts (u/), the blob
// links (l/) and their unused stamps (y/): a link is stamped if and only
// if no manifest of its repository uses it.
func (c *checker) useCounts(usage *sorter) error {
	streams, err := open(c.output(usage), c.keys(prefixUsage), c.keys(prefixLink), c.keys(prefixUnused))
	if err != nil {
		return err
	}
	const recount, stored, link, stamp = 0, 1, 2, 3
	return c.join(streams, func(key []byte, on []bool) error {
		var want, have int64
		if on[recount] {
			want = count(streams[recount].value())
		}
		reset := false
		if on[stored] {
			n, k := binary.Uvarint(streams[stored].value())
			have, reset = int64(n), k <= 0
		}
		wrong := false
		switch {
		case reset:
			c.r.problem(false, "use count %q: does not decode, manifests %d", key, want)
			wrong = true
		case have != want && !on[stored]:
			c.r.problem(false, "use count %q: missing, manifests %d", key, want)
			wrong = true
		case have != want:
			c.r.problem(false, "use count %q: %d, manifests %d", key, have, want)
			wrong = true
		}
		switch {
		case on[link] && (want == 0) != on[stamp]:
			c.r.problem(false, "link %q: used %d times, unused stamp %v", key, want, on[stamp])
			wrong = true
		case !on[link] && on[stamp]:
			c.r.problem(false, "unused stamp of a link that does not exist: %q", key)
			wrong = true
		}
		if !wrong {
			return nil
		}
		f := fix{kind: fixUsage, key: key, a: want - have}
		if reset {
			f.a, f.b = want, 1
		}
		return c.fix(f)
	})
}

// repositories joins the repositories that have links or manifests with
// the catalog (r/). A repository stays in the catalog after its last
// link and manifest went (as in distribution's), so the catalog counts.
func (c *checker) repositories() error {
	streams, err := open(c.repos(prefixLink), c.repos(prefixMan), c.keys(prefixRepo))
	if err != nil {
		return err
	}
	const catalog = 2
	return c.join(streams, func(repo []byte, on []bool) error {
		c.truth.Repos++
		if on[catalog] {
			c.stored.Repos++
			c.r.Repos++
			return nil
		}
		c.r.problem(false, "repository %q has links or manifests but no catalog entry", repo)
		return c.fix(fix{kind: fixRepo, key: repo})
	})
}

// blobs joins the blob records (b/) with the references recounted and the
// unreferenced stamps (z/): a blob's refs count its links and manifests,
// and it is stamped if and only if they are zero. Each blob's chunks go
// into the chunk references' sort, and its size and kind into the
// counters.
func (c *checker) blobs(blobRefs *sorter) (*sorter, error) {
	chunkRefs := c.newSorter(1, sumCounts)
	streams, err := open(c.keys(prefixBlob), c.output(blobRefs), c.keys(prefixUnref))
	if err != nil {
		return chunkRefs, err
	}
	const record, recount, stamp = 0, 1, 2
	err = c.join(streams, func(key []byte, on []bool) error {
		d := digest.Digest(key)
		var want int64
		if on[recount] {
			want = count(streams[recount].value())
		}
		if !on[record] {
			if on[recount] {
				c.r.problem(true, "blob %s: linked or a manifest, but not indexed", d)
			}
			if on[stamp] {
				c.r.problem(false, "unreferenced stamp of a blob not indexed: %s", d)
				return c.fix(fix{kind: fixOrphanUnref, key: key})
			}
			return nil
		}
		bv, err := decodeBlob(streams[record].value())
		if err != nil {
			c.r.problem(true, "blob %s: %v", d, err)
			return nil
		}
		c.r.Blobs++
		wrong := false
		if bv.refs != want {
			c.r.problem(false, "blob %s: refs %d, links %d", d, bv.refs, want)
			wrong = true
		}
		if (want == 0) != on[stamp] {
			c.r.problem(false, "blob %s: refs %d, unreferenced stamp %v", d, want, on[stamp])
			wrong = true
		}
		if wrong {
			if err := c.fix(fix{kind: fixBlob, key: key, a: want - bv.refs}); err != nil {
				return err
			}
		}
		for _, ch := range bv.chunks {
			if err := chunkRefs.Add(ch.ID[:], one); err != nil {
				return err
			}
		}
		c.countBlob(d, bv, want)
		return nil
	})
	return chunkRefs, err
}

// countBlob adds a blob to the counters; want is its recounted refs.
func (c *checker) countBlob(d digest.Digest, bv blobValue, want int64) {
	for _, s := range []*Stats{&c.truth, &c.stored} {
		s.Blobs++
		s.LogicalBytes += bv.size
		switch bv.kind {
		case KindPending:
			s.PendingBytes += bv.size
		case KindLayer:
			s.ConvertedBlobs++
		}
	}
	c.truth.LinkedBytes += want * bv.size
	c.stored.LinkedBytes += bv.refs * bv.size
	if bv.kind == KindLayer {
		class, err := encodingClass(bv.layout)
		if err != nil {
			c.r.problem(true, "blob %s: %v", d, err)
		} else if class != "" {
			c.encodings[class]++
		}
	}
}
