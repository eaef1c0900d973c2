package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/chunkyard/chunkyard/refgraph"
)

// UsageOptions configure a UsageTracker.
type UsageOptions struct {
	// Interval between background recomputations (0: DefaultUsageInterval).
	Interval time.Duration
	// TempDir and Memory bound each computation (refgraph.UsageOptions).
	TempDir string
	Memory  int
	// Quotas are the most unique bytes each namespace may hold.
	Quotas map[string]int64
	// Deletions, if set, counts what garbage collection deleted (blobs
	// and manifests): when it moves, usage is recomputed within a minute,
	// so that the quota estimates drop after deletions without waiting
	// for Interval.
	Deletions func() int64
	Logger    *slog.Logger
}

// DefaultUsageInterval is how often usage is recomputed by default.
const DefaultUsageInterval = 10 * time.Minute

// deletionPoll is how often Run looks at UsageOptions.Deletions (tests
// shorten it).
var deletionPoll = time.Minute

// UsageTracker keeps the storage usage of repositories and namespaces:
// the last full computation (refgraph.Graph.StorageUsage, from a
// snapshot, recomputed every Interval and on demand), and per namespace
// with a quota an estimate kept up to date between computations by the
// uploads the quota check admits (see Quota). Safe for concurrent use.
type UsageTracker struct {
	graph *refgraph.Graph
	opts  UsageOptions
	log   *slog.Logger

	computing sync.Mutex // one computation at a time

	mu     sync.Mutex
	last   *refgraph.UsageReport
	lastAt time.Time // when the last computation's snapshot was taken (about)
	ns     map[string]*nsEstimate
	runs   int64
	failed int64
}

// nsEstimate is the quota bookkeeping of one namespace with a quota.
type nsEstimate struct {
	base      int64 // unique bytes at the last computation
	admitted  int64 // bytes of the uploads admitted and completed, since start
	mark      int64 // admitted when the last computation began
	inFlight  int64 // bytes of finishing uploads being committed now
	computed  bool  // base is from a computation (else 0: none yet)
	refusals  int64
	limit     int64
	namespace string
}

// NewUsageTracker returns a tracker; Run computes usage in the background.
func NewUsageTracker(g *refgraph.Graph, opts UsageOptions) *UsageTracker {
	if opts.Interval <= 0 {
		opts.Interval = DefaultUsageInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	u := &UsageTracker{graph: g, opts: opts, log: opts.Logger.With("component", "usage"), ns: map[string]*nsEstimate{}}
	for ns, limit := range opts.Quotas {
		u.ns[ns] = &nsEstimate{limit: limit, namespace: ns}
	}
	return u
}

// Run computes usage now and then every Interval (and after deletions)
// until ctx is done.
func (u *UsageTracker) Run(ctx context.Context) {
	poll := min(u.opts.Interval, deletionPoll)
	t := time.NewTicker(poll)
	defer t.Stop()
	var deleted int64
	for {
		if u.opts.Deletions != nil {
			deleted = u.opts.Deletions()
		}
		if _, err := u.Refresh(ctx); err != nil && ctx.Err() == nil {
			u.log.Error("usage computation failed", "err", err)
		}
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if time.Since(last) >= u.opts.Interval || u.opts.Deletions != nil && u.opts.Deletions() != deleted {
				break
			}
		}
	}
}

// Refresh computes usage now, and resets the quota estimates to it.
func (u *UsageTracker) Refresh(ctx context.Context) (*refgraph.UsageReport, error) {
	u.computing.Lock()
	defer u.computing.Unlock()
	// Uploads admitted from here on may or may not be in the snapshot:
	// they stay counted on top of it (an over-estimate until the next
	// computation, never an under-estimate).
	u.mu.Lock()
	marks := make(map[string]int64, len(u.ns))
	for ns, e := range u.ns {
		marks[ns] = e.admitted
	}
	u.mu.Unlock()
	at := time.Now()
	rep, err := u.graph.StorageUsage(ctx, refgraph.UsageOptions{TempDir: u.opts.TempDir, Memory: u.opts.Memory})
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.failed++
		return nil, err
	}
	u.runs++
	u.last, u.lastAt = rep, at
	for _, e := range u.ns {
		e.base, e.computed, e.mark = 0, true, marks[e.namespace]
	}
	for _, n := range rep.Namespaces {
		if e := u.ns[n.Name]; e != nil {
			e.base = n.UniqueBytes
		}
	}
	u.log.Info("usage computed", "repositories", len(rep.Repos), "namespaces", len(rep.Namespaces),
		"chunks", rep.Chunks, "stored_bytes", rep.StoredBytes, "unattributed_bytes", rep.UnattributedBytes,
		"sort_runs", rep.SortRuns, "duration", rep.Duration.Round(time.Millisecond))
	return rep, nil
}

// Last returns the last computation and when it began (nil if none yet).
func (u *UsageTracker) Last() (*refgraph.UsageReport, time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.lastAt
}

// estimate returns the unique bytes estimated for e now; u.mu held.
func (e *nsEstimate) estimate() int64 {
	return e.base + (e.admitted - e.mark) + e.inFlight
}

// QuotaState is one namespace's quota as the tracker sees it.
type QuotaState struct {
	Namespace string `json:"namespace"`
	Limit     int64  `json:"limit_bytes"`
	// Estimate is the unique bytes at the last computation plus the
	// bytes of the uploads admitted since (and those being committed).
	Estimate int64 `json:"estimate_bytes"`
	Computed bool  `json:"computed"` // a computation has run (else the estimate counts uploads only)
	Refusals int64 `json:"refusals"` // uploads refused since start
}

// Quotas returns the state of every namespace with a quota.
func (u *UsageTracker) Quotas() []QuotaState {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]QuotaState, 0, len(u.ns))
	for _, e := range u.ns {
		out = append(out, QuotaState{Namespace: e.namespace, Limit: e.limit, Estimate: e.estimate(), Computed: e.computed, Refusals: e.refusals})
	}
	sortQuotas(out)
	return out
}

// usageResponse is what GET /admin/usage answers.
type usageResponse struct {
	ComputedAt time.Time             `json:"computed_at"`
	Usage      *refgraph.UsageReport `json:"usage"`
	Quotas     []QuotaState          `json:"quotas"`
}

// Handler serves the admin API's usage endpoint:
//
//	GET /admin/usage[?fresh=1]  the last computation (computed now if
//	                            none yet or fresh is set) and the quotas
func (u *UsageTracker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rep, at := u.Last()
		if rep == nil || r.URL.Query().Get("fresh") != "" {
			var err error
			if rep, err = u.Refresh(r.Context()); err != nil {
				http.Error(w, fmt.Sprintf("computing usage: %v", err), http.StatusInternalServerError)
				return
			}
			_, at = u.Last()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(usageResponse{ComputedAt: at.UTC(), Usage: rep, Quotas: u.Quotas()})
	})
}
