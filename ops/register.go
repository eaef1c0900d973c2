package ops

import "github.com/prometheus/client_golang/prometheus"

// Register adds a collector of another package (replication) to the
// server's metrics.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }
