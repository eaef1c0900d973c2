// Package ops owns what a running server offers its operator beyond the
// registry API: Prometheus metrics (an HTTP middleware counting requests
// by route template, and collectors that read the counters the index,
// the service, the collector and the store keep), storage usage per
// repository and namespace kept fresh in the background (served on the
// admin API), and per-namespace quotas on unique bytes enforced in front
// of the registry API.
package ops
