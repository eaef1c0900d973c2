package replication

import "github.com/prometheus/client_golang/prometheus"

// Collector returns the sender's metrics for Prometheus, one series per
// peer: queue depth and lag from the outbox, and what was sent.
func (s *Sender) Collector() prometheus.Collector { return senderCollector{s} }

type senderCollector struct{ s *Sender }

var (
	descPending = prometheus.NewDesc("chunkyard_replication_pending_events", "Outbox events the peer has not acknowledged.", []string{"peer"}, nil)
	descLag     = prometheus.NewDesc("chunkyard_replication_lag_seconds", "Age of the oldest event the peer has not acknowledged (0: none).", []string{"peer"}, nil)
	descEvents  = prometheus.NewDesc("chunkyard_replication_events_total", "Events applied on the peer (or skipped: not selected, or given up).", []string{"peer"}, nil)
	descImages  = prometheus.NewDesc("chunkyard_replication_manifests_total", "Manifests sent to the peer.", []string{"peer"}, nil)
	descSent    = prometheus.NewDesc("chunkyard_replication_sent_bytes_total", "Request body bytes sent to the peer.", []string{"peer"}, nil)
	descRecv    = prometheus.NewDesc("chunkyard_replication_received_bytes_total", "Response body bytes received from the peer.", []string{"peer"}, nil)
	descWhole   = prometheus.NewDesc("chunkyard_replication_whole_blob_bytes_total", "Bytes whole-blob replication would have sent for the same manifests (the sizes of the blobs the peer lacked).", []string{"peer"}, nil)
	descErrors  = prometheus.NewDesc("chunkyard_replication_errors_total", "Failed attempts (retried).", []string{"peer"}, nil)
	descFailed  = prometheus.NewDesc("chunkyard_replication_failed_events_total", "Events given up after the peer kept refusing them.", []string{"peer"}, nil)
	descDown    = prometheus.NewDesc("chunkyard_replication_peer_down", "1 while the peer cannot be reached.", []string{"peer"}, nil)
)

func (c senderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descLag, descEvents, descImages, descSent, descRecv, descWhole, descErrors, descFailed, descDown} {
		ch <- d
	}
}

func (c senderCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.s.Stats() {
		down := 0.0
		if st.Down {
			down = 1
		}
		for _, m := range []struct {
			d *prometheus.Desc
			t prometheus.ValueType
			v float64
		}{
			{descPending, prometheus.GaugeValue, float64(st.Pending)},
			{descLag, prometheus.GaugeValue, st.LagSeconds},
			{descEvents, prometheus.CounterValue, float64(st.Events)},
			{descImages, prometheus.CounterValue, float64(st.Images)},
			{descSent, prometheus.CounterValue, float64(st.BytesSent)},
			{descRecv, prometheus.CounterValue, float64(st.BytesReceived)},
			{descWhole, prometheus.CounterValue, float64(st.WholeBlobBytes)},
			{descErrors, prometheus.CounterValue, float64(st.Errors)},
			{descFailed, prometheus.CounterValue, float64(st.Failed)},
			{descDown, prometheus.GaugeValue, down},
		} {
			ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v, st.Peer)
		}
	}
}
