// Package opstest scrapes a Prometheus /metrics endpoint for tests.
package opstest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Scrape is one scrape: every sample by name and labels.
type Scrape map[string][]Sample

// Sample is one sample: its labels and value (a histogram's count).
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Get scrapes url (text format).
func Get(url string) (Scrape, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	out := Scrape{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			s := Sample{Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.Labels[l.GetName()] = l.GetValue()
			}
			s.Value = value(f.GetType(), m)
			out[name] = append(out[name], s)
		}
	}
	return out, nil
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	default:
		return m.GetUntyped().GetValue()
	}
}

// Sum adds the samples of name whose labels include match (k=v pairs).
func (s Scrape) Sum(name string, match ...string) float64 {
	var sum float64
	for _, x := range s[name] {
		ok := true
		for _, kv := range match {
			k, v, _ := strings.Cut(kv, "=")
			if x.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			sum += x.Value
		}
	}
	return sum
}

// Value is the one sample of name (with labels matching), or an error
// naming what is there.
func (s Scrape) Value(name string, match ...string) (float64, error) {
	if _, ok := s[name]; !ok {
		names := make([]string, 0, len(s))
		for n := range s {
			names = append(names, n)
		}
		slices.Sort(names)
		return 0, fmt.Errorf("no metric %s (have %s)", name, strings.Join(names, ", "))
	}
	return s.Sum(name, match...), nil
}
