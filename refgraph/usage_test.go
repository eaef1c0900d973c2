package refgraph

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// usageModel is what a test pushed, to compute usage by brute force.
type usageModel struct {
	stored  map[chunkstore.ID]int64           // stored length of each chunk written
	blobs   map[digest.Digest][]chunkstore.ID // chunks of each blob
	pending map[digest.Digest]int64           // pending blobs' sizes
	links   map[string]map[digest.Digest]bool // what each repository links
	// manifests is what each repository holds as a manifest: unlinking a
	// blob link to the same digest leaves the manifest holding it.
	manifests map[string]map[digest.Digest]bool
}

// expected computes usage per holder from the model: for each chunk (and
// pending blob) the set of holders, then the definition in usage.go.
func (m *usageModel) expected(holderOf func(repo string) string) (map[string]Usage, int64) {
	holders := map[string]map[string]bool{} // chunk or pending digest -> holders
	size := map[string]int64{}
	for repo, ds := range m.links {
		for d := range ds {
			var items []string
			if n, ok := m.pending[d]; ok {
				items = append(items, "p"+string(d))
				size["p"+string(d)] = n
			}
			for _, id := range m.blobs[d] {
				items = append(items, "c"+string(id[:]))
				size["c"+string(id[:])] = m.stored[id]
			}
			for _, it := range items {
				if holders[it] == nil {
					holders[it] = map[string]bool{}
				}
				holders[it][holderOf(repo)] = true
			}
		}
	}
	out := map[string]Usage{}
	var total int64
	for it, hs := range holders {
		names := slices.Sorted(func(yield func(string) bool) {
			for h := range hs {
				if !yield(h) {
					return
				}
			}
		})
		s := size[it]
		total += s
		for i, h := range names {
			u := out[h]
			u.Name = h
			if len(names) == 1 {
				u.UniqueBytes += s
			} else {
				share := s / int64(len(names))
				if int64(i) < s%int64(len(names)) {
					share++
				}
				u.SharedBytes += share
				u.HeldSharedBytes += s
			}
			out[h] = u
		}
	}
	return out, total
}

func TestStorageUsage(t *testing.T) {
	g := openTest(t)
	r := rand.New(rand.NewPCG(7, 7))
	m := &usageModel{stored: map[chunkstore.ID]int64{}, blobs: map[digest.Digest][]chunkstore.ID{},
		pending: map[digest.Digest]int64{}, links: map[string]map[digest.Digest]bool{},
		manifests: map[string]map[digest.Digest]bool{}}
	repos := []string{"a/x", "a/y", "a/y/z", "a-b/w", "b/q", "c"}
	link := func(repo string, d digest.Digest) {
		if m.links[repo] == nil {
			m.links[repo] = map[digest.Digest]bool{}
		}
		m.links[repo][d] = true
	}
	// A pool of chunks of odd sizes, blobs drawing from it (so that
	// repositories share chunks, and blobs repeat chunks).
	const poolSize = 60
	var pool []chunkstore.ID
	for i := range poolSize {
		pool = append(pool, chunkID(fmt.Sprint("chunk", i)))
	}
	for i := range 80 {
		repo := repos[r.IntN(len(repos))]
		d := digest.FromString(fmt.Sprint("blob", i))
		switch r.IntN(6) {
		case 0: // pending
			n := int64(1 + r.IntN(1000))
			if _, err := g.CommitPending(repo, d, n); err != nil {
				t.Fatal(err)
			}
			m.pending[d] = n
			link(repo, d)
			continue
		case 1: // mount an existing blob elsewhere
			if i > 0 {
				prev := digest.FromString(fmt.Sprint("blob", r.IntN(i)))
				if _, ok := m.blobs[prev]; ok {
					if err := g.LinkBlob(repo, prev); err != nil {
						t.Fatal(err)
					}
					link(repo, prev)
					continue
				}
			}
		}
		var chunks []chunkstore.Chunk
		var ids []chunkstore.ID
		for range 1 + r.IntN(6) {
			id := pool[r.IntN(poolSize)]
			c := chunkstore.Chunk{ID: id, RawLen: 100}
			if _, ok := m.stored[id]; !ok {
				n := int64(1 + r.IntN(997))
				m.stored[id] = n
				c.Loc = &chunkstore.Location{Pack: "p", Offset: int64(i) * 1000, StoredLen: uint32(n), RawLen: 100}
			}
			chunks = append(chunks, c)
			ids = append(ids, id)
		}
		if r.IntN(4) == 0 { // a manifest rather than a blob
			if err := g.PutManifest(repo, Manifest{Digest: d, MediaType: "x", Size: 10}, "", chunks); err != nil {
				t.Fatal(err)
			}
			if m.manifests[repo] == nil {
				m.manifests[repo] = map[digest.Digest]bool{}
			}
			m.manifests[repo][d] = true
		} else if err := g.CommitBlob(repo, d, 10, chunks); err != nil {
			t.Fatal(err)
		}
		m.blobs[d] = ids
		link(repo, d)
	}
	// Unlink a few blobs: what only they held is unattributed. Sorted, so
	// that the seed alone decides which.
	for _, repo := range slices.Sorted(maps.Keys(m.links)) {
		ds := m.links[repo]
		for _, d := range slices.Sorted(maps.Keys(ds)) {
			if _, isBlob := m.blobs[d]; r.IntN(5) == 0 && (isBlob || m.pending[d] > 0) {
				if ok, _ := g.Linked(repo, d); ok {
					if err := g.UnlinkBlob(repo, d); err != nil {
						t.Fatal(err)
					}
					if !m.manifests[repo][d] { // a manifest there still holds it
						delete(ds, d)
					}
				}
			}
		}
	}
	st := g.Stats()
	for _, mem := range []int{0, 2048} { // in memory, and spilling runs
		rep, err := g.StorageUsage(context.Background(), UsageOptions{TempDir: t.TempDir(), Memory: mem})
		if err != nil {
			t.Fatal(err)
		}
		if mem > 0 && rep.SortRuns == 0 {
			t.Errorf("memory %d: no sort spilled", mem)
		}
		if rep.StoredBytes != st.LiveStoredBytes+st.PendingBytes {
			t.Fatalf("stored bytes %d, counters say %d", rep.StoredBytes, st.LiveStoredBytes+st.PendingBytes)
		}
		for _, level := range []struct {
			name string
			got  []Usage
			of   func(string) string
		}{{"repositories", rep.Repos, func(s string) string { return s }}, {"namespaces", rep.Namespaces, Namespace}} {
			want, held := m.expected(level.of)
			var sum int64
			for _, u := range level.got {
				sum += u.UniqueBytes + u.SharedBytes
				w := want[u.Name]
				w.Name = u.Name
				if u != w {
					t.Errorf("%s: %+v, want %+v", level.name, u, w)
				}
			}
			if sum+rep.UnattributedBytes != rep.StoredBytes {
				t.Errorf("%s: unique+shared %d + unattributed %d != stored %d", level.name, sum, rep.UnattributedBytes, rep.StoredBytes)
			}
			if sum != held {
				t.Errorf("%s: unique+shared %d, held by any repository %d", level.name, sum, held)
			}
		}
		if rep.UnattributedBytes == 0 || len(rep.Namespaces) != 4 || len(rep.Repos) != len(repos) {
			t.Errorf("fixture too weak: unattributed %d, %d namespaces, %d repositories", rep.UnattributedBytes, len(rep.Namespaces), len(rep.Repos))
		}
		t.Logf("memory %d: %+v", mem, *rep)
	}
}
