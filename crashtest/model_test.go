package crashtest

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

func sha256Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func parseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	return d, d.Validate()
}

// link is a blob as a repository sees it.
type link struct{ repo, digest string }

// model is what clients were told: every acknowledgement (a 201) is
// recorded here after it arrived, under mu; the crash hook copies the model
// under mu too, so the copy holds exactly the acknowledgements that came
// before the crash instant.
type model struct {
	mu sync.Mutex
	// links are blobs acknowledged in a repository (the 201 of an upload).
	links map[link]bool
	// mustExist are the links no GC run can have reclaimed: acknowledged
	// after the last GC run began, or referenced by a manifest retention
	// keeps. The others may be gone.
	mustExist map[link]bool
	// tags: repo -> tag -> manifest digest, acknowledged. In gc/*
	// repositories, retention keeps only the newest tag.
	tags map[string]map[string]string
	// newest is the newest acknowledged tag of each gc/* repository.
	newest map[string]string
	// refs are the blobs (config and layers) each manifest names.
	refs map[string][]string
	// attempted holds what was sent and not acknowledged (yet): after a
	// crash it may or may not be there; if it is, it must be intact.
	attemptedLinks map[link]bool
	attemptedTags  map[[2]string]string // {repo, tag} -> digest
}

func newModel() *model {
	return &model{
		links:          map[link]bool{},
		mustExist:      map[link]bool{},
		tags:           map[string]map[string]string{},
		newest:         map[string]string{},
		refs:           map[string][]string{},
		attemptedLinks: map[link]bool{},
		attemptedTags:  map[[2]string]string{},
	}
}

// clone copies the model; call with mu held.
func (m *model) clone() *model {
	c := &model{
		links:          maps.Clone(m.links),
		mustExist:      maps.Clone(m.mustExist),
		tags:           map[string]map[string]string{},
		newest:         maps.Clone(m.newest),
		refs:           maps.Clone(m.refs),
		attemptedLinks: maps.Clone(m.attemptedLinks),
		attemptedTags:  maps.Clone(m.attemptedTags),
	}
	for repo, t := range m.tags {
		c.tags[repo] = maps.Clone(t)
	}
	return c
}

func gcRepo(repo string) bool { return strings.HasPrefix(repo, "gc/") }

func (m *model) attemptLink(l link) {
	m.mu.Lock()
	m.attemptedLinks[l] = true
	m.mu.Unlock()
}

func (m *model) ackLink(l link) {
	m.mu.Lock()
	delete(m.attemptedLinks, l)
	m.links[l] = true
	m.mustExist[l] = true
	m.mu.Unlock()
}

func (m *model) attemptTag(repo, tag, d string, refs []string) {
	m.mu.Lock()
	m.attemptedTags[[2]string{repo, tag}] = d
	m.refs[d] = refs
	m.mu.Unlock()
}

func (m *model) ackTag(repo, tag, d string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.attemptedTags, [2]string{repo, tag})
	m.addTag(repo, tag, d)
}

// addTag records tag as there; call with mu held.
func (m *model) addTag(repo, tag, d string) {
	if m.tags[repo] == nil {
		m.tags[repo] = map[string]string{}
	}
	m.tags[repo][tag] = d
	if gcRepo(repo) {
		m.newest[repo] = tag
	}
}

// gcStarts is called when a GC run begins: from then on only what
// retention keeps is sure to stay. Older tags of gc/* repositories and
// every link no kept manifest names may be reclaimed.
func (m *model) gcStarts() {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := map[link]bool{}
	for repo, tags := range m.tags {
		if gcRepo(repo) {
			newest := m.newest[repo]
			d, ok := tags[newest]
			m.tags[repo] = map[string]string{}
			if ok {
				m.tags[repo][newest] = d
			}
		}
		for _, d := range m.tags[repo] {
			for _, ref := range m.refs[d] {
				kept[link{repo, ref}] = true
			}
		}
	}
	for l := range m.mustExist {
		if !kept[l] {
			delete(m.mustExist, l)
		}
	}
	// Attempts cut off by an earlier crash are garbage now.
	clear(m.attemptedLinks)
	clear(m.attemptedTags)
}
