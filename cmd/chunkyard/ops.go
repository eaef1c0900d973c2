package main

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ops"
	"github.com/chunkyard/chunkyard/registry"
)

// opsFlags are serve's flags for usage, quotas and metrics.
type opsFlags struct {
	quotas        quotaFlag
	usageInterval time.Duration
}

func addOpsFlags(fs *flag.FlagSet, f *opsFlags) {
	f.quotas = quotaFlag{}
	fs.Var(f.quotas, "quota", "NAMESPACE=SIZE: the most unique bytes the repositories under NAMESPACE (a name's first component) may hold; pushes past it are refused with DENIED (repeatable, or comma-separated)")
	fs.DurationVar(&f.usageInterval, "usage-interval", ops.DefaultUsageInterval, "how often storage usage per repository and namespace is recomputed (the quota estimates are corrected then)")
}

// quotaFlag collects --quota values.
type quotaFlag map[string]int64

func (q quotaFlag) String() string {
	var parts []string
	for ns, n := range q {
		parts = append(parts, ns+"="+formatSize(n))
	}
	return strings.Join(parts, ",")
}

func (q quotaFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		ns, n, err := ops.ParseQuota(strings.TrimSpace(part), parseSize)
		if err != nil {
			return err
		}
		q[ns] = n
	}
	return nil
}

// opsServer is serve's usage tracker (quotas) and metrics.
type opsServer struct {
	usage   *ops.UsageTracker
	metrics *ops.Metrics
	svc     *registry.Service
}

func newOpsServer(f opsFlags, data *dataDir, svc *registry.Service, col *gc.Collector, tempDir string, log *slog.Logger) (*opsServer, error) {
	deletions := func() int64 { r := col.Stats(); return r.BlobsDeleted + r.ManifestsDeleted }
	usage := ops.NewUsageTracker(data.graph, ops.UsageOptions{Interval: f.usageInterval, TempDir: tempDir, Quotas: f.quotas,
		Deletions: deletions, Logger: log})
	src := ops.Sources{Graph: data.graph, Service: svc, GC: col, Store: data.store, Usage: usage, StoreListEvery: 30 * time.Second}
	if data.s3 != nil {
		src.S3 = data.s3
	}
	for ns, n := range f.quotas {
		log.Info("quota", "namespace", ns, "unique_bytes", n)
	}
	return &opsServer{usage: usage, metrics: ops.NewMetrics(src), svc: svc}, nil
}

// register adds GET /metrics and GET /admin/usage to the admin API.
func (o *opsServer) register(admin *http.ServeMux) {
	admin.Handle("GET /metrics", o.metrics.Handler())
	admin.Handle("/admin/usage", o.usage.Handler())
}

// run recomputes usage every --usage-interval until ctx is done.
func (o *opsServer) run(ctx context.Context) { o.usage.Run(ctx) }
