package ops_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BenchmarkScrape measures one scrape of /metrics on a registry holding
// 20 images after 20 pushes and 20 pulls (every route and status seen),
// next to a scrape of the Go runtime and process collectors alone (the
// baseline every Go exporter pays), in the same run.
func BenchmarkScrape(b *testing.B) {
	e := newEnv(b, map[string]int64{"team": 1 << 30})
	for i := range 20 {
		img := image(b, randomLayer(uint64(i), 64<<10))
		if err := remote.Write(e.ref(fmt.Sprintf("team/app%d:1", i)), img); err != nil {
			b.Fatal(err)
		}
		if _, err := remote.Image(e.ref(fmt.Sprintf("team/app%d:1", i))); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.usage.Refresh(b.Context()); err != nil {
		b.Fatal(err)
	}
	base := prometheus.NewRegistry()
	base.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range []struct {
		name string
		h    func() http.HandlerFunc
	}{
		{"go-process-only", func() http.HandlerFunc { return promhttp.HandlerFor(base, promhttp.HandlerOpts{}).ServeHTTP }},
		{"chunkyard", func() http.HandlerFunc { return e.metrics.Handler().ServeHTTP }},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := c.h()
			var size int
			for b.Loop() {
				w := httptest.NewRecorder()
				h(w, httptest.NewRequest("GET", "/metrics", nil))
				size = w.Body.Len()
				io.Discard.Write(w.Body.Bytes())
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
