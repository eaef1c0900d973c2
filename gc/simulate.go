package gc

import (
	"time"

	"errors"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// simulation works out, for a dry run, which blobs the planned deletions
// leave unreferenced and which chunk bytes that releases. It assumes the
// grace periods are over and nothing is pushed meanwhile.
type simulation struct {
	g        *refgraph.Graph
	blobRefs map[digest.Digest]int64 // references the plans remove
}

func newSimulation(g *refgraph.Graph) *simulation {
	return &simulation{g: g, blobRefs: map[digest.Digest]int64{}}
}

// add counts what plan removes in repo: the manifests' own links, and the
// links of blobs no remaining manifest uses.
func (s *simulation) add(repo string, plan repoPlan) error {
	for _, d := range plan.manifests {
		s.blobRefs[d.Digest]++
	}
	for _, d := range plan.unused {
		ok, err := s.g.Linked(repo, d)
		if err != nil {
			return err
		}
		if ok {
			s.blobRefs[d]++
		}
	}
	return nil
}

// result returns the blobs left unreferenced (with those already so),
// their logical bytes and the stored bytes of the chunks only they hold.
func (s *simulation) result() (blobs int, blobBytes, chunkBytes int64, err error) {
	var freed []refgraph.Blob
	consider := func(d digest.Digest, removed int64) error {
		b, err := s.g.Blob(d)
		if errors.Is(err, refgraph.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if b.Refs-removed <= 0 {
			freed = append(freed, b)
		}
		return nil
	}
	for d, n := range s.blobRefs {
		if err := consider(d, n); err != nil {
			return 0, 0, 0, err
		}
	}
	// Blobs unreferenced already (their grace period may still run).
	var farFuture = maxTime
	if err := s.g.UnreferencedBlobs(farFuture, func(d digest.Digest) error {
		if _, counted := s.blobRefs[d]; counted {
			return nil
		}
		return consider(d, 0)
	}); err != nil {
		return 0, 0, 0, err
	}
	drops := map[chunkstore.ID]int64{}
	for _, b := range freed {
		blobBytes += b.Size
		for _, c := range b.Chunks {
			drops[c.ID]++
		}
	}
	for id, n := range drops {
		c, err := s.g.Chunk(id)
		if errors.Is(err, refgraph.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, 0, err
		}
		if c.Refs > 0 && c.Refs <= n {
			chunkBytes += int64(c.Loc.StoredLen)
		}
	}
	return len(freed), blobBytes, chunkBytes, nil
}

// maxTime is after every stamp.
var maxTime = time.Unix(1<<62, 0)
