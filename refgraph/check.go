package refgraph

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chunkyard/chunkyard/internal/extsort"
)

// CheckReport is what Check found.
type CheckReport struct {
	// Records checked.
	Repos     int64 `json:"repositories"`
	Links     int64 `json:"links"`
	Manifests int64 `json:"manifests"`
	Blobs     int64 `json:"blobs"`
	Chunks    int64 `json:"chunks"`
	Packs     int64 `json:"packs"`
	// Drift counts records whose counters or stamps disagreed with a
	// recount (fixed when repairing); Broken counts references to records
	// that do not exist (a manifest's blob, a blob's chunk, a chunk's
	// pack, a chunk record in a retired pack) and records that do not
	// decode, which no recount can fix.
	Drift    int      `json:"drift"`
	Broken   int      `json:"broken"`
	Problems []string `json:"problems,omitempty"` // at most maxProblems, drift and broken alike
	// Repaired: drift was found and every repair was applied (or found
	// moot, see RepairsSkipped). Repairs counts the batches' fixes
	// applied; RepairsSkipped those whose record had gone or changed
	// since the snapshot so that the fix no longer applied (a blob
	// deleted meanwhile, a count that the fix would take below zero).
	Repaired       bool  `json:"repaired"`
	Repairs        int64 `json:"repairs,omitempty"`
	RepairsSkipped int64 `json:"repairs_skipped,omitempty"`
	// SortRuns counts the sorted runs the recounts wrote to disk: 0 if
	// everything fit in CheckOptions.Memory.
	SortRuns int           `json:"sort_runs"`
	Duration time.Duration `json:"duration_ns"`
}

const maxProblems = 200

// OK reports whether nothing was found.
func (r *CheckReport) OK() bool { return r.Drift == 0 && r.Broken == 0 }

func (r *CheckReport) problem(broken bool, format string, args ...any) {
	r.problems(broken, 1, format, args...)
}

// problems counts n problems of one kind, described once.
func (r *CheckReport) problems(broken bool, n int, format string, args ...any) {
	if broken {
		r.Broken += n
	} else {
		r.Drift += n
	}
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// CheckOptions tune Check.
type CheckOptions struct {
	// Repair applies the fixes for the drift found, after the scan.
	Repair bool
	// TempDir is where Check makes the temporary directory for its sorted
	// runs and its list of repairs, removed when it returns; "" means
	// os.TempDir(). Runs take about 40 bytes per chunk reference of the
	// blobs, at worst (few duplicates), and less for everything else.
	TempDir string
	// Memory bounds the bytes Check holds for sorting (two sorts at a
	// time share it); 0 means DefaultCheckMemory. Pebble's block cache
	// and the Go runtime's slack come on top.
	Memory int

	// phaseDone, if set, is called after each phase of the scan, and
	// with "scan" before the repairs (tests write meanwhile).
	phaseDone func(phase string)
}

// DefaultCheckMemory is the default CheckOptions.Memory.
const DefaultCheckMemory = 64 << 20

// Check is CheckWith with the default options: a check, and with repair
// the repairs, of the whole index.
func (g *Graph) Check(repair bool) (*CheckReport, error) {
	return g.CheckWith(context.Background(), CheckOptions{Repair: repair})
}

// CheckWith recounts every reference count, use count, GC stamp, pack
// counter, queue schedule and index-wide counter from the records
// themselves, and reports where the stored ones differ (drift) and where
// a record names one that does not exist (broken).
//
// It runs online: it reads a Pebble snapshot, taken at the start, and
// never holds the writer mutex while scanning, so pushes and garbage
// collection go on; the report describes the index as it was at the
// snapshot, with no false drift from writes made meanwhile. Its memory
// is bounded by opts.Memory whatever the index's size: each recount is
// an external sort (records emit the keys they reference into sorted
// runs on disk, which are merged, counting, in key order) merge-joined
// with the records it counts, which Pebble iterates in the same order.
//
// With opts.Repair, the fixes found are logged to a file while scanning
// and applied afterwards, a few thousand to a batch under the writer
// mutex, each re-checking its record in its own batch:
//
//   - a count (a blob's refs, a chunk's refs, a use count, an encoding
//     count) moves by the drift measured at the snapshot: new = current +
//     (recount - value at the snapshot). Writers since then moved it by
//     the changes they made, so the result is exact, whatever they did.
//     The batch moves what depends on the count as any batch does (a
//     chunk that becomes live adds its bytes to its pack and to the
//     counters; a blob's refs move the linked bytes);
//   - pack counters and index-wide counters move by their drift from
//     the records as stored at the snapshot (the records' own drift is
//     the previous point's business), so they too end exact;
//   - presence facts (a GC stamp, a schedule key, a catalog entry) are
//     decided against the record as it is when the fix is applied: a
//     blob is stamped unreferenced only if its refs are zero then, a
//     link unused only if it exists and its use count is zero then;
//   - a fix whose record went since the snapshot, or that would take a
//     count below zero (a writer undid what the fix restores), is
//     skipped and counted in RepairsSkipped; the next check sees what
//     is left.
//
// A stamp set by a repair carries the repair's time, so garbage
// collection waits a full grace period from then. Broken references are
// reported, never repaired.
func (g *Graph) CheckWith(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	start := time.Now()
	if opts.Memory <= 0 {
		opts.Memory = DefaultCheckMemory
	}
	dir, err := os.MkdirTemp(opts.TempDir, "chunkyard-check-")
	if err != nil {
		return nil, fmt.Errorf("refgraph: check: %w", err)
	}
	defer os.RemoveAll(dir)
	c := &checker{g: g, ctx: ctx, opts: opts, dir: dir, r: &CheckReport{}, encodings: map[string]int64{}}
	if opts.Repair {
		if c.fixes, err = createFixLog(dir); err != nil {
			return nil, err
		}
		defer c.fixes.close()
	}
	snap := g.Snapshot()
	err = c.scan(snap.s)
	if cerr := snap.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("refgraph: check: %w", err)
	}
	c.done("scan")
	if opts.Repair && c.fixes.n > 0 {
		if err := c.repair(); err != nil {
			return nil, fmt.Errorf("refgraph: check: repair: %w", err)
		}
		c.r.Repaired = true
	}
	c.r.Duration = time.Since(start)
	return c.r, nil
}

// checker is one run of Check.
type checker struct {
	g    *Graph
	ctx  context.Context
	opts CheckOptions
	dir  string
	r    *CheckReport
	snap snapReader

	// The counters recounted: truth from the records as they should be
	// (what the report compares with), stored from the counts as they are
	// (what a repair of the counters moves them by, see CheckWith).
	truth, stored Stats
	encodings     map[string]int64 // split layers per encoder class (a handful)
	// The sorts buffer records in two Buffers, each handed on to the sort
	// after next: at most two sorts are alive at a time.
	bufs [2]extsort.Buffer

	fixes *fixLog // nil unless repairing
}

// scan runs the phases of the check against snap. Each recount is a sort
// filled by one phase and joined by the next; at most two sorts are alive
// at a time, each with half the memory: blob references and use counts
// (buffers 0 and 1), then chunk references (1), pack sums (0), the
// queue's schedule (1).
func (c *checker) scan(snap snapReader) error {
	c.snap = snap
	blobRefs, usage, err := c.linksAndManifests()
	defer blobRefs.Close()
	defer usage.Close()
	if err != nil {
		return err
	}
	c.done("links and manifests")
	if err := c.useCounts(usage); err != nil {
		return err
	}
	usage.Close()
	c.done("use counts")
	if err := c.repositories(); err != nil {
		return err
	}
	c.done("repositories")
	chunkRefs, err := c.blobs(blobRefs)
	defer chunkRefs.Close()
	if err != nil {
		return err
	}
	blobRefs.Close()
	c.done("blobs")
	packSums, err := c.chunks(chunkRefs)
	defer packSums.Close()
	if err != nil {
		return err
	}
	chunkRefs.Close()
	c.done("chunks")
	if err := c.packs(packSums); err != nil {
		return err
	}
	packSums.Close()
	c.done("packs")
	if err := c.queue(); err != nil {
		return err
	}
	c.done("queue")
	if err := c.encodingCounts(); err != nil {
		return err
	}
	c.done("encodings")
	return c.counters()
}

// newSorter returns a sort with half the memory, buffering in c.bufs[buf].
func (c *checker) newSorter(buf int, combine func(acc, v []byte) []byte) *sorter {
	o := extsort.Options{Dir: c.dir, Memory: c.opts.Memory / 2, Combine: combine, Buffer: &c.bufs[buf]}
	return &sorter{Sorter: extsort.New(o), r: c.r}
}

// sorter is a sort that counts its runs in the report when closed.
type sorter struct {
	*extsort.Sorter
	r      *CheckReport
	closed bool
}

func (s *sorter) Close() error {
	if !s.closed {
		s.closed = true
		s.r.SortRuns += s.Runs()
	}
	return s.Sorter.Close()
}

func (c *checker) done(phase string) {
	if c.opts.phaseDone != nil {
		c.opts.phaseDone(phase)
	}
}

// fix logs a repair to apply after the scan (if repairing).
func (c *checker) fix(f fix) error {
	if c.fixes == nil {
		return nil
	}
	return c.fixes.add(f)
}
