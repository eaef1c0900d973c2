package ops_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
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

// BenchmarkMiddleware measures the metrics and quota middleware on the
// registry API: pulls of a 16 MiB blob and pushes of a 1 MiB blob
// (monolithic POST, into a namespace with a quota) through the API with
// them and without them (the baseline), in the same run, over HTTP.
func BenchmarkMiddleware(b *testing.B) {
	e := newEnv(b, map[string]int64{"team": 1 << 40})
	blob := make([]byte, 16<<20)
	for i := range blob {
		blob[i] = byte(i * 7 >> 3)
	}
	d := digest.FromBytes(blob)
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/team/app/blobs/uploads/?digest=%s", e.host, d), "application/octet-stream", bytes.NewReader(blob))
	if err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	bare := httptest.NewServer(e.api)
	defer bare.Close()
	for _, c := range []struct{ name, host string }{{"bare", strings.TrimPrefix(bare.URL, "http://")}, {"metrics+quota", e.host}} {
		b.Run("pull-16MiB/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(blob)))
			for b.Loop() {
				resp, err := http.Get(fmt.Sprintf("http://%s/v2/team/app/blobs/%s", c.host, d))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
		b.Run("push-1MiB/"+c.name, func(b *testing.B) {
			b.SetBytes(1 << 20)
			i := 0
			for b.Loop() {
				i++
				small := append([]byte(fmt.Sprint(c.name, i)), blob[:1<<20]...)
				resp, err := http.Post(fmt.Sprintf("http://%s/v2/team/app/blobs/uploads/?digest=%s", c.host, digest.FromBytes(small)),
					"application/octet-stream", bytes.NewReader(small))
				if err != nil || resp.StatusCode != http.StatusCreated {
					b.Fatalf("push: %v %v", resp, err)
				}
				resp.Body.Close()
			}
		})
	}
}
