package gc

import (
	"context"
	"fmt"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
)

// FsckReport is what Fsck found: the index's recount, then the packs.
type FsckReport struct {
	Index *refgraph.CheckReport `json:"index"`
	// PacksChecked are the packs whose trailers were read; PackProblems
	// are live chunk records with no matching record in their pack, and
	// indexed packs missing from the backend (no repair can fix those).
	PacksChecked int      `json:"packs_checked"`
	PackProblems []string `json:"pack_problems,omitempty"`
	// UnknownPacks are in the backend but not in the index: garbage a
	// run deletes after the grace period, not a problem.
	UnknownPacks int `json:"unknown_packs"`
}

// OK reports whether nothing is wrong.
func (r *FsckReport) OK() bool { return r.Index.OK() && len(r.PackProblems) == 0 }

// Fsck recomputes every count in the index (repairing drift if asked, see
// refgraph.Check) and verifies that every chunk the index holds live is
// where it says in a pack the backend has, by the packs' trailers. Run it
// on a store nothing else writes to.
func Fsck(ctx context.Context, g *refgraph.Graph, s Store, repair bool) (*FsckReport, error) {
	idx, err := g.Check(repair)
	if err != nil {
		return nil, fmt.Errorf("fsck: index: %w", err)
	}
	r := &FsckReport{Index: idx}
	inBackend := map[string]bool{}
	if err := s.ListPacks(ctx, func(name string, _ int64) error {
		inBackend[name] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("fsck: listing packs: %w", err)
	}
	open := map[string]bool{}
	for _, p := range s.OpenPacks() {
		open[p] = true
	}
	byPack := map[string][]refgraph.Chunk{}
	if err := g.Chunks(func(c refgraph.Chunk) error {
		if c.Refs > 0 {
			byPack[c.Loc.Pack] = append(byPack[c.Loc.Pack], c)
		}
		return ctx.Err()
	}); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	problem := func(format string, args ...any) {
		if len(r.PackProblems) < 200 {
			r.PackProblems = append(r.PackProblems, fmt.Sprintf(format, args...))
		}
	}
	for pack, chunks := range byPack {
		if open[pack] {
			continue // its records are checked as they are read
		}
		if !inBackend[pack] {
			problem("pack %s: %d live chunks, but the backend has no such pack", pack, len(chunks))
			continue
		}
		entries, err := s.ReadTrailer(ctx, pack)
		if err != nil {
			problem("pack %s: %v", pack, err)
			continue
		}
		r.PacksChecked++
		at := make(map[int64]chunkstore.PackEntry, len(entries))
		for _, e := range entries {
			at[e.Loc.Offset] = e
		}
		for _, c := range chunks {
			if e, ok := at[c.Loc.Offset]; !ok || e.ID != c.ID || e.Loc != c.Loc {
				problem("chunk %s: no matching record at %s+%d", c.ID, pack, c.Loc.Offset)
			}
		}
	}
	if err := g.Packs(func(p refgraph.Pack) error {
		delete(inBackend, p.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	r.UnknownPacks = len(inBackend)
	return r, nil
}
