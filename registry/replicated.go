package registry

import (
	"context"
	"fmt"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// replicatedPut marks a manifest put that applies a peer's change (see
// PutReplicatedManifest); it travels in the request context to
// indexManifest.
type replicatedPut struct {
	tag    string
	stamp  refgraph.Stamp
	tagged bool
}

type replicatedPutKey struct{}

type pulledThroughKey struct{}

// pulledThrough marks a manifest put that stores what a pull fetched
// through the fallback: a copy of content from elsewhere, which the
// replication outbox does not record (a node replicates what its own
// clients pushed).
func pulledThrough(ctx context.Context) context.Context {
	return context.WithValue(ctx, pulledThroughKey{}, true)
}

// indexManifest is the index batch of a manifest put: a client's, or a
// peer's (then without an outbox event, and with the tag set only if the
// peer's stamp wins).
func (s *Service) indexManifest(ctx context.Context, repo string, m refgraph.Manifest, tag string, written []chunkstore.Chunk) error {
	if rp, ok := ctx.Value(replicatedPutKey{}).(*replicatedPut); ok {
		tagged, err := s.graph.PutReplicatedManifest(repo, m, rp.tag, rp.stamp, written)
		rp.tagged = tagged
		return err
	}
	if ctx.Value(pulledThroughKey{}) != nil {
		return s.graph.PutManifestUnrecorded(repo, m, tag, written)
	}
	return s.graph.PutManifest(repo, m, tag, written)
}

// PutReplicatedManifest stores manifest d (content) as a peer region
// pushed it: validated like a client's push (everything it names must be
// in repo), recorded in no outbox, and tagged with tag only if stamp wins
// over the tag's current stamp (refgraph.Stamp.After). It reports whether
// the tag was set.
func (s *Service) PutReplicatedManifest(ctx context.Context, repo string, d digest.Digest, mediaType string, content []byte, tag string, stamp refgraph.Stamp) (tagged bool, err error) {
	if err := checkDigest(d); err != nil {
		return false, err
	}
	if tag != "" {
		if err := ValidateTag(tag); err != nil {
			return false, err
		}
	}
	rp := &replicatedPut{tag: tag, stamp: stamp}
	got, _, err := s.PutManifest(context.WithValue(ctx, replicatedPutKey{}, rp), repo, string(d), mediaType, content)
	if err != nil {
		return false, err
	}
	if got != d {
		return false, fmt.Errorf("%w: manifest is %s, not %s", ErrDigestInvalid, got, d)
	}
	return rp.tagged, nil
}
