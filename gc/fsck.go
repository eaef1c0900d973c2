package gc

import (
	"context"
	"fmt"
	"os"

	"github.com/chunkyard/chunkyard/refgraph"
)

// FsckReport is what Fsck found: the index's recount, then the packs.
type FsckReport struct {
	Index *refgraph.CheckReport `json:"index"`
	// PacksChecked are the packs whose trailers were read. PackProblems
	// are live chunk records with no matching record in their pack, and
	// packs holding live chunks that cannot be read (missing from the
	// backend, or a bad trailer): no repair can fix those. At most
	// maxPackProblems are listed; PackProblemCount counts them all.
	PacksChecked     int      `json:"packs_checked"`
	PackProblems     []string `json:"pack_problems,omitempty"`
	PackProblemCount int      `json:"pack_problem_count"`
	// ChangedMeanwhile counts what disagreed at the snapshot but not with
	// the index as it was when re-checked: chunks moved or released, packs
	// retired, by writers and garbage collection while Fsck ran.
	ChangedMeanwhile int `json:"changed_meanwhile"`
	// UnknownPacks are in the backend but not in the index: garbage a
	// run deletes after the grace period, not a problem.
	UnknownPacks int `json:"unknown_packs"`
	// SortRuns counts the sorted runs the pack check wrote to disk: 0 if
	// its sorts fit in FsckOptions.Memory.
	SortRuns int `json:"sort_runs"`
}

const maxPackProblems = 200

// OK reports whether nothing is wrong.
func (r *FsckReport) OK() bool { return r.Index.OK() && r.PackProblemCount == 0 }

func (r *FsckReport) packProblem(format string, args ...any) {
	r.PackProblemCount++
	if len(r.PackProblems) < maxPackProblems {
		r.PackProblems = append(r.PackProblems, fmt.Sprintf(format, args...))
	}
}

// FsckOptions tune FsckWith.
type FsckOptions struct {
	// Repair repairs the index's drift (see refgraph.Graph.CheckWith).
	Repair bool
	// TempDir is where the sorted runs go, in temporary directories
	// removed when Fsck returns; "" means os.TempDir(). The pack check's
	// take about 50 bytes per live chunk record (the index check's, see
	// refgraph.CheckOptions).
	TempDir string
	// Memory bounds the bytes held for sorting, by the index check and
	// then by the pack check; 0 means refgraph.DefaultCheckMemory. The
	// pack check also holds the live chunk records and trailers of the
	// Readers+2 packs in flight, bounded by the pack size.
	Memory int
	// Readers is how many pack trailers are read at once (requests to an
	// object store are slow, not heavy); default 8.
	Readers int
}

// Fsck is FsckWith with the default options.
func Fsck(ctx context.Context, g *refgraph.Graph, s Store, repair bool) (*FsckReport, error) {
	return FsckWith(ctx, g, s, FsckOptions{Repair: repair})
}

// FsckWith recounts every count in the index (repairing drift if asked,
// see refgraph.Graph.CheckWith), then verifies that every chunk the index
// holds live is where it says in a pack the backend has, by the packs'
// trailers, reading each trailer once. Both run online, on snapshots of
// the index, with memory bounded whatever its size: the live chunk
// records are sorted by pack and offset on disk and merge-joined with
// each pack's trailer. What disagrees at the snapshot is re-checked
// against the index as it is before it is reported, so that a chunk moved
// by a repack or a pack retired meanwhile is no problem. Packs still
// being written or waiting for upload are not read.
func FsckWith(ctx context.Context, g *refgraph.Graph, s Store, o FsckOptions) (*FsckReport, error) {
	if o.Memory <= 0 {
		o.Memory = refgraph.DefaultCheckMemory
	}
	if o.Readers <= 0 {
		o.Readers = 8
	}
	idx, err := g.CheckWith(ctx, refgraph.CheckOptions{Repair: o.Repair, TempDir: o.TempDir, Memory: o.Memory})
	if err != nil {
		return nil, fmt.Errorf("fsck: index: %w", err)
	}
	r := &FsckReport{Index: idx}
	dir, err := os.MkdirTemp(o.TempDir, "chunkyard-fsck-")
	if err != nil {
		return nil, fmt.Errorf("fsck: %w", err)
	}
	defer os.RemoveAll(dir)
	snap := g.Snapshot()
	defer snap.Close()
	pc := &packCheck{g: g, s: s, snap: snap, o: o, dir: dir, r: r}
	if err := pc.chunksInPacks(ctx); err != nil {
		return nil, fmt.Errorf("fsck: packs: %w", err)
	}
	if err := pc.unknownPacks(ctx); err != nil {
		return nil, fmt.Errorf("fsck: packs: %w", err)
	}
	return r, nil
}
