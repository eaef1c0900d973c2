package crashtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/opencontainers/go-digest"
)

// verdict is what one verification found.
type verdict struct {
	ackedChecked int      // acknowledged blobs and tags checked
	visible      int      // blobs read because the index shows them
	losses       []string // acknowledged data missing or wrong
	problems     []string // anything else wrong (fsck, a visible blob that does not read)
}

func (v *verdict) lose(format string, args ...any) {
	v.losses = append(v.losses, fmt.Sprintf(format, args...))
}

func (v *verdict) problem(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

func (v *verdict) ok() bool { return len(v.losses) == 0 && len(v.problems) == 0 }

// verify checks a reopened world against the model of what was
// acknowledged before the crash, then adopts into the model what the
// crash left visible of the attempts in flight (they are in the index, so
// they must read back intact, and from now on they must stay).
func verify(w *world, m *model) *verdict {
	v := &verdict{}
	ctx := context.Background()

	rep, err := gc.Fsck(ctx, w.graph, w.store, false)
	switch {
	case err != nil:
		v.problem("fsck: %v", err)
	case !rep.OK():
		b, _ := json.Marshal(rep)
		v.problem("fsck: %s", b)
	}

	read := map[link]error{}
	readBlob := func(repo, d string) error {
		l := link{repo, d}
		if err, ok := read[l]; ok {
			return err
		}
		_, err := w.readBlob(repo, d)
		read[l] = err
		return err
	}

	// What was acknowledged.
	for _, repo := range slices.Sorted(maps.Keys(m.tags)) {
		for _, tag := range slices.Sorted(maps.Keys(m.tags[repo])) {
			d := m.tags[repo][tag]
			v.ackedChecked++
			if err := checkManifest(w, repo, tag, d); err != nil {
				v.lose("tag %s:%s: %v", repo, tag, err)
				continue
			}
			for _, ref := range m.refs[d] {
				if err := readBlob(repo, ref); err != nil {
					v.lose("tag %s:%s: blob %s: %v", repo, tag, ref, err)
				}
			}
		}
	}
	for _, l := range slices.SortedFunc(maps.Keys(m.mustExist), compareLinks) {
		v.ackedChecked++
		if err := readBlob(l.repo, l.digest); err != nil {
			v.lose("blob %s in %s: %v", l.digest, l.repo, err)
		}
	}

	// Everything the index shows must read back intact.
	repos, _, err := w.svc.Catalog(ctx, "", -1)
	if err != nil {
		v.problem("catalog: %v", err)
	}
	for _, repo := range repos {
		tags, _, err := w.svc.Tags(ctx, repo, "", -1)
		if err != nil && !errors.Is(err, registry.ErrNameUnknown) {
			v.problem("tags of %s: %v", repo, err)
		}
		for _, tag := range tags {
			man, err := w.svc.GetManifest(ctx, repo, tag)
			if err != nil {
				v.problem("manifest %s:%s: %v", repo, tag, err)
				continue
			}
			if got := sha256Digest(man.Content); got != man.Digest.String() {
				v.problem("manifest %s:%s: content hashes to %s, index says %s", repo, tag, got, man.Digest)
				continue
			}
			refs, err := manifestRefs(man.Content)
			if err != nil {
				v.problem("manifest %s:%s: %v", repo, tag, err)
				continue
			}
			for _, ref := range refs {
				v.visible++
				if err := readBlob(repo, ref); err != nil {
					v.problem("manifest %s:%s: blob %s: %v", repo, tag, ref, err)
				}
			}
			// An attempt the crash cut off but the index has: adopt it.
			if d, ok := m.attemptedTags[[2]string{repo, tag}]; ok && d == man.Digest.String() {
				m.refs[d] = refs
				m.addTag(repo, tag, d)
			}
		}
	}
	for l := range m.attemptedLinks {
		ok, err := w.graph.Linked(l.repo, digest.Digest(l.digest))
		if err != nil {
			v.problem("link %s in %s: %v", l.digest, l.repo, err)
			continue
		}
		if !ok {
			continue
		}
		v.visible++
		if err := readBlob(l.repo, l.digest); err != nil {
			v.problem("blob %s in %s, indexed before the crash: %v", l.digest, l.repo, err)
			continue
		}
		m.links[l] = true
		m.mustExist[l] = true
	}
	clear(m.attemptedLinks)
	clear(m.attemptedTags)
	return v
}

func compareLinks(a, b link) int {
	if a.repo != b.repo {
		if a.repo < b.repo {
			return -1
		}
		return 1
	}
	if a.digest < b.digest {
		return -1
	}
	if a.digest > b.digest {
		return 1
	}
	return 0
}

// checkManifest fetches repo:tag through the HTTP handler and checks that
// it is manifest d, byte-exact.
func checkManifest(w *world, repo, tag, d string) error {
	rec := w.do(http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil,
		map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"})
	if rec.Code != http.StatusOK {
		return fmt.Errorf("GET: %d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Docker-Content-Digest"); got != d {
		return fmt.Errorf("tag points at %s, acknowledged %s", got, d)
	}
	if got := sha256Digest(rec.Body.Bytes()); got != d {
		return fmt.Errorf("body hashes to %s", got)
	}
	return nil
}

// manifestRefs lists the config and layers an image manifest names.
func manifestRefs(b []byte) ([]string, error) {
	var man struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, err
	}
	refs := []string{man.Config.Digest}
	for _, l := range man.Layers {
		refs = append(refs, l.Digest)
	}
	return refs, nil
}
