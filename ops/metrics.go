package ops

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chunkyard/chunkyard/assembler"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/chunkyard/chunkyard/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the Prometheus registry of a server: the request metrics its
// Middleware counts, the collectors of Sources, and Go's runtime and
// process metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
}

// NewMetrics returns the metrics of a server reading what s names (nil
// fields are left out).
func NewMetrics(s Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chunkyard_http_requests_total",
			Help: "Registry API requests answered, by route template, method and status."}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chunkyard_http_request_duration_seconds",
			Help:    "Registry API request latency (until the handler returns: the whole body sent), by route template and method.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chunkyard_http_request_bytes_total",
			Help: "Request body bytes read, by route template."}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chunkyard_http_response_bytes_total",
			Help: "Response body bytes written, by route template."}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.bytesIn, m.bytesOut,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newSourceCollector(s))
	return m
}

// Handler serves the metrics in Prometheus' text format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Middleware counts the requests next answers.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := ParseRoute(r.URL.EscapedPath()).Template
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			m.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
			m.requests.WithLabelValues(route, r.Method, strconv.Itoa(cw.status)).Inc()
			m.bytesIn.WithLabelValues(route).Add(float64(body.n.Load()))
			m.bytesOut.WithLabelValues(route).Add(float64(cw.n))
		}()
		next.ServeHTTP(cw, r)
	})
}

type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	status  int
	n       int64
	written bool
}

func (w *countingWriter) WriteHeader(code int) {
	if !w.written && code >= 200 {
		w.written = true
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.written = true
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Sources are what the collectors read at each scrape; a nil one is left
// out.
type Sources struct {
	Graph   GraphSource
	Service ServiceSource
	GC      GCSource
	Store   StoreSource
	S3      S3Source
	Usage   *UsageTracker
	// StoreListEvery bounds how often a scrape lists the backend for the
	// stored bytes (a LIST per 1,000 packs on S3): within it the last
	// listing is reused. 0: every scrape.
	StoreListEvery time.Duration
}

// Small interfaces over what the sources offer.
type (
	GraphSource interface {
		Stats() refgraph.Stats
		Queue(fn func(refgraph.QueueEntry) error) error
	}
	ServiceSource interface {
		ConvertStats() registry.ConvertStats
		LayerStats() assembler.LayerStats
	}
	GCSource    interface{ Stats() gc.RunStats }
	StoreSource interface {
		Stats(ctx context.Context) (chunkstore.Stats, error)
	}
	S3Source interface{ RequestErrors() map[string]int64 }
)

// StoredBytes is what `chunkyard stats` calls stored bytes: the packs in
// the backend and in staging, plus the blobs pending conversion.
func StoredBytes(st chunkstore.Stats, g refgraph.Stats) int64 {
	return st.PackBytes + st.OpenPackBytes + g.PendingBytes
}

// sourceCollector turns the sources' counters into metrics at each scrape.
type sourceCollector struct {
	s Sources

	mu       sync.Mutex // guards the cached listing
	listed   time.Time
	listing  chunkstore.Stats
	listErrs int64
}

func newSourceCollector(s Sources) *sourceCollector { return &sourceCollector{s: s} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dLogical        = desc("chunkyard_logical_bytes", "Sum of the sizes of the stored blobs, each once.")
	dStored         = desc("chunkyard_stored_bytes", "Stored bytes as `chunkyard stats` counts them: packs in the backend and in staging, plus blobs pending conversion.")
	dLiveStored     = desc("chunkyard_live_stored_bytes", "Stored bytes of the chunks the index references.")
	dPackBytes      = desc("chunkyard_index_pack_bytes", "Stored bytes written into the packs the index knows (live or dead).")
	dPendingBytes   = desc("chunkyard_pending_bytes", "Bytes of blobs received and waiting for the layer converter.")
	dDedup          = desc("chunkyard_dedup_ratio", "Logical bytes over stored bytes.")
	dRepos          = desc("chunkyard_repositories", "Repositories.")
	dBlobs          = desc("chunkyard_blobs", "Blobs indexed.")
	dChunks         = desc("chunkyard_chunks", "Live chunks indexed.")
	dPending        = desc("chunkyard_pending_conversions", "Blobs queued for the layer converter.")
	dPendingAge     = desc("chunkyard_pending_conversion_oldest_age_seconds", "Age of the oldest queued conversion (0: none queued).")
	dFailedConv     = desc("chunkyard_failed_conversions", "Blobs whose conversion was abandoned (kept as received).")
	dConverted      = desc("chunkyard_converted_layers_total", "Layers converted into split layers since start.")
	dConvertTar     = desc("chunkyard_converted_tar_bytes_total", "Uncompressed tar bytes of the layers converted since start.")
	dCacheHits      = desc("chunkyard_layer_cache_hits_total", "Layer pulls served from the encoded layer cache.")
	dCacheMisses    = desc("chunkyard_layer_cache_misses_total", "Layer pulls that started an encode.")
	dCacheJoined    = desc("chunkyard_layer_cache_joined_total", "Layer pulls that joined an encode already running.")
	dCacheRatio     = desc("chunkyard_layer_cache_hit_ratio", "Hits over hits, misses and joins since start (0 before any pull).")
	dEncode         = desc("chunkyard_encode_seconds_total", "Wall time spent encoding layers for pulls, all encodes together.")
	dGCRuns         = desc("chunkyard_gc_runs_total", "Garbage collection runs (not dry runs).")
	dGCFailed       = desc("chunkyard_gc_failed_runs_total", "Garbage collection runs that ended in an error.")
	dGCReclaimed    = desc("chunkyard_gc_reclaimed_bytes_total", "Stored bytes of the packs garbage collection deleted.")
	dGCPacks        = desc("chunkyard_gc_packs_deleted_total", "Packs garbage collection deleted.")
	dGCBlobs        = desc("chunkyard_gc_blobs_deleted_total", "Blobs garbage collection deleted.")
	dGCManifests    = desc("chunkyard_gc_manifests_deleted_total", "Manifests retention deleted.")
	dGCSeconds      = desc("chunkyard_gc_seconds_total", "Wall time of the garbage collection runs.")
	dS3Errors       = desc("chunkyard_s3_request_errors_total", "S3 requests that failed after their retries, by operation.", "operation")
	dListErrors     = desc("chunkyard_store_list_errors_total", "Scrapes whose listing of the backend failed (the stored bytes are then the last listing's).")
	dNSUnique       = desc("chunkyard_namespace_unique_bytes", "Stored bytes only this namespace holds, at the last usage computation.", "namespace")
	dNSShared       = desc("chunkyard_namespace_shared_bytes", "This namespace's equal share of the stored bytes it holds with others, at the last usage computation.", "namespace")
	dUnattributed   = desc("chunkyard_usage_unattributed_bytes", "Stored bytes no repository holds (waiting for GC), at the last usage computation.")
	dUsageAt        = desc("chunkyard_usage_computed_timestamp_seconds", "When the last usage computation began (Unix time).")
	dUsageSeconds   = desc("chunkyard_usage_compute_seconds", "Duration of the last usage computation.")
	dQuotaLimit     = desc("chunkyard_quota_limit_bytes", "Unique bytes a namespace may hold.", "namespace")
	dQuotaEstimate  = desc("chunkyard_quota_estimate_bytes", "Unique bytes a namespace is estimated to hold now (last computation plus uploads admitted since).", "namespace")
	dQuotaRefusals  = desc("chunkyard_quota_refusals_total", "Uploads refused for the quota.", "namespace")
	sourceCollected = []*prometheus.Desc{dLogical, dStored, dLiveStored, dPackBytes, dPendingBytes, dDedup, dRepos, dBlobs, dChunks,
		dPending, dPendingAge, dFailedConv, dConverted, dConvertTar, dCacheHits, dCacheMisses, dCacheJoined, dCacheRatio, dEncode,
		dGCRuns, dGCFailed, dGCReclaimed, dGCPacks, dGCBlobs, dGCManifests, dGCSeconds, dS3Errors, dListErrors,
		dNSUnique, dNSShared, dUnattributed, dUsageAt, dUsageSeconds, dQuotaLimit, dQuotaEstimate, dQuotaRefusals}
)

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range sourceCollected {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	s := c.s
	if s.Graph != nil {
		g := s.Graph.Stats()
		gauge(dLogical, float64(g.LogicalBytes))
		gauge(dLiveStored, float64(g.LiveStoredBytes))
		gauge(dPackBytes, float64(g.PackBytes))
		gauge(dPendingBytes, float64(g.PendingBytes))
		gauge(dRepos, float64(g.Repos))
		gauge(dBlobs, float64(g.Blobs))
		gauge(dChunks, float64(g.Chunks))
		gauge(dPending, float64(g.PendingConversions))
		gauge(dFailedConv, float64(g.FailedConversions))
		var oldest time.Time
		if g.PendingConversions > 0 {
			s.Graph.Queue(func(e refgraph.QueueEntry) error {
				if oldest.IsZero() || e.Queued.Before(oldest) {
					oldest = e.Queued
				}
				return nil
			})
		}
		age := 0.0
		if !oldest.IsZero() {
			age = max(time.Since(oldest).Seconds(), 0)
		}
		gauge(dPendingAge, age)
		if s.Store != nil {
			st := c.storeListing()
			stored := StoredBytes(st, g)
			gauge(dStored, float64(stored))
			ratio := 0.0
			if stored > 0 {
				ratio = float64(g.LogicalBytes) / float64(stored)
			}
			gauge(dDedup, ratio)
			c.mu.Lock()
			counter(dListErrors, float64(c.listErrs))
			c.mu.Unlock()
		}
	}
	if s.Service != nil {
		cs, ls := s.Service.ConvertStats(), s.Service.LayerStats()
		counter(dConverted, float64(cs.Layers))
		counter(dConvertTar, float64(cs.TarBytes))
		counter(dCacheHits, float64(ls.Hits))
		counter(dCacheMisses, float64(ls.Misses))
		counter(dCacheJoined, float64(ls.Joined))
		ratio := 0.0
		if n := ls.Hits + ls.Misses + ls.Joined; n > 0 {
			ratio = float64(ls.Hits) / float64(n)
		}
		gauge(dCacheRatio, ratio)
		counter(dEncode, ls.EncodeTime.Seconds())
	}
	if s.GC != nil {
		r := s.GC.Stats()
		counter(dGCRuns, float64(r.Runs))
		counter(dGCFailed, float64(r.Failed))
		counter(dGCReclaimed, float64(r.ReclaimedBytes))
		counter(dGCPacks, float64(r.PacksDeleted))
		counter(dGCBlobs, float64(r.BlobsDeleted))
		counter(dGCManifests, float64(r.ManifestsDeleted))
		counter(dGCSeconds, r.Duration.Seconds())
	}
	if s.S3 != nil {
		for op, n := range s.S3.RequestErrors() {
			counter(dS3Errors, float64(n), op)
		}
	}
	if s.Usage != nil {
		if rep, at := s.Usage.Last(); rep != nil {
			for _, n := range rep.Namespaces {
				gauge(dNSUnique, float64(n.UniqueBytes), n.Name)
				gauge(dNSShared, float64(n.SharedBytes), n.Name)
			}
			gauge(dUnattributed, float64(rep.UnattributedBytes))
			gauge(dUsageAt, float64(at.UnixNano())/1e9)
			gauge(dUsageSeconds, rep.Duration.Seconds())
		}
		for _, q := range s.Usage.Quotas() {
			gauge(dQuotaLimit, float64(q.Limit), q.Namespace)
			gauge(dQuotaEstimate, float64(q.Estimate), q.Namespace)
			counter(dQuotaRefusals, float64(q.Refusals), q.Namespace)
		}
	}
}

// storeListing returns the backend's listing, at most StoreListEvery old.
func (c *sourceCollector) storeListing() chunkstore.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listed.IsZero() || time.Since(c.listed) >= c.s.StoreListEvery {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := c.s.Store.Stats(ctx)
		if err != nil {
			c.listErrs++
		} else {
			c.listing, c.listed = st, time.Now()
		}
	}
	return c.listing
}
