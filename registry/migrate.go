package registry

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// refsMigrated is the index setting that says every manifest records the
// digests it names (manifests pushed by chunkyard before that have none,
// so garbage collection could not reclaim what only they used).
const refsMigrated = "manifest-refs"

// migrateRefs records the references of manifests stored without them,
// once per data dir, in the background: until it is done such manifests'
// blobs are simply not reclaimed, never lost.
func (s *Service) migrateRefs(ctx context.Context) {
	if _, err := s.graph.Setting(refsMigrated); err == nil {
		return
	} else if !errors.Is(err, refgraph.ErrNotFound) {
		s.log.Warn("reading the index settings", "err", err)
		return
	}
	type item struct {
		repo string
		m    refgraph.Manifest
	}
	var todo []item
	err := s.graph.AllManifests(func(repo string, m refgraph.Manifest) error {
		if len(m.Refs) == 0 {
			todo = append(todo, item{repo, m})
		}
		return ctx.Err()
	})
	n := 0
	for _, it := range todo {
		if err != nil {
			break
		}
		b, berr := s.graph.Blob(it.m.Digest)
		if berr != nil {
			continue // deleted meanwhile
		}
		content, rerr := s.readAll(ctx, b)
		if rerr != nil {
			err = rerr
			break
		}
		var body manifestBody
		if json.Unmarshal(content, &body) != nil {
			continue
		}
		var refs []digest.Digest
		if body.Config != nil {
			refs = append(refs, body.Config.Digest)
		}
		for _, d := range append(body.Layers, body.Manifests...) {
			if len(d.URLs) == 0 {
				refs = append(refs, d.Digest)
			}
		}
		if err = s.graph.SetManifestRefs(it.repo, it.m.Digest, refs); err == nil {
			n++
		}
	}
	if err == nil {
		err = s.graph.PutSetting(refsMigrated, []byte("1"))
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("recording the references of older manifests; retried at the next start", "err", err)
		}
		return
	}
	if n > 0 {
		s.log.Info("recorded the references of manifests stored by an older chunkyard", "manifests", n)
	}
}
