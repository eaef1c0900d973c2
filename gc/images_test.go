package gc_test

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

func indexOf(t testing.TB, imgs ...v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		adds = append(adds, mutate.IndexAddendum{Add: img})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

// referrer pushes an artifact manifest whose subject is ref's manifest and
// returns its digest.
func referrer(t testing.TB, h *harness, ref string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(h.ref(ref))
	if err != nil {
		t.Fatal(err)
	}
	art := mutate.Subject(mutate.MediaType(image(t, blobLayer(randomBytes(77, 1000))), types.OCIManifestSchema1), *desc).(v1.Image)
	d, err := art.Digest()
	if err != nil {
		t.Fatal(err)
	}
	repo := h.ref(ref).Context()
	if err := remote.Write(repo.Digest(d.String()), art); err != nil {
		t.Fatal(err)
	}
	return d
}

func refgraphDigest(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }
