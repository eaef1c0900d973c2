package gc

import (
	"slices"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// Deletion is one tag or manifest a policy deletes.
type Deletion struct {
	Repo   string        `json:"repo"`
	Tag    string        `json:"tag,omitempty"` // empty: the manifest
	Digest digest.Digest `json:"digest"`
	Why    string        `json:"why"`
}

// repoPlan is what retention deletes in one repository, in order (tags,
// then manifests, an index before the manifests it names).
type repoPlan struct {
	tags      []Deletion
	manifests []Deletion
	// refs of the deleted manifests whose use in the repository drops to
	// zero: their links become unused.
	unused []digest.Digest
}

// planRepo applies policy p to repo at now.
func planRepo(g *refgraph.Graph, repo string, p *Policy, now time.Time) (repoPlan, error) {
	var plan repoPlan
	tags, err := g.TagRecords(repo)
	if err != nil {
		return plan, err
	}
	mans, err := g.Manifests(repo)
	if err != nil {
		return plan, err
	}
	pulledRecently := func(d digest.Digest) (bool, error) {
		if p.KeepPulledWithin == 0 {
			return false, nil
		}
		t, err := g.LastPulled(repo, d)
		return err == nil && !t.IsZero() && now.Sub(t) < p.KeepPulledWithin.D(), err
	}

	// Tags, newest first.
	slices.SortStableFunc(tags, func(a, b refgraph.TagRecord) int { return b.Pushed.Compare(a.Pushed) })
	tagged := map[digest.Digest]bool{}
	for i, t := range tags {
		why := ""
		switch {
		case p.KeepLast > 0 && i >= p.KeepLast:
			why = "beyond keep_last"
		case p.DeleteTagsOlderThan > 0 && now.Sub(t.Pushed) > p.DeleteTagsOlderThan.D():
			why = "older than delete_tags_older_than"
		}
		if why != "" && p.keepTags != nil && p.keepTags.MatchString(t.Name) {
			why = ""
		}
		if why != "" {
			recent, err := pulledRecently(t.Digest)
			if err != nil {
				return plan, err
			}
			if recent {
				why = ""
			}
		}
		if why == "" {
			tagged[t.Digest] = true
			continue
		}
		plan.tags = append(plan.tags, Deletion{Repo: repo, Tag: t.Name, Digest: t.Digest, Why: why})
	}

	// Untagged manifests, to a fixed point: deleting an index frees the
	// manifests it names, deleting a subject frees its referrers.
	present := map[digest.Digest]refgraph.Manifest{}
	usage := map[digest.Digest]int{}
	for _, m := range mans {
		present[m.Digest] = m
		for _, r := range m.Refs {
			usage[r]++
		}
	}
	if p.DeleteUntaggedOlderThan > 0 {
		for changed := true; changed; {
			changed = false
			for _, m := range mans {
				if _, ok := present[m.Digest]; !ok || tagged[m.Digest] || usage[m.Digest] > 0 ||
					now.Sub(m.Pushed) <= p.DeleteUntaggedOlderThan.D() {
					continue
				}
				if _, ok := present[m.Subject]; m.Subject != "" && ok {
					continue // a referrer of a manifest still here
				}
				recent, err := pulledRecently(m.Digest)
				if err != nil {
					return plan, err
				}
				if recent {
					continue
				}
				delete(present, m.Digest)
				changed = true
				why := "untagged, older than delete_untagged_older_than"
				if m.Subject != "" {
					why = "referrer of a deleted manifest, older than delete_untagged_older_than"
				}
				plan.manifests = append(plan.manifests, Deletion{Repo: repo, Digest: m.Digest, Why: why})
				for _, r := range m.Refs {
					if usage[r]--; usage[r] == 0 {
						if _, isManifest := present[r]; !isManifest {
							plan.unused = append(plan.unused, r)
						}
					}
				}
			}
		}
	}
	return plan, nil
}
