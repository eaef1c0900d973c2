package refgraph

import (
	"context"
	"testing"
)

// BenchmarkStorageUsage measures StorageUsage on the synthetic index of
// BenchmarkCheck (CHUNKYARD_FSCK_BENCH_CHUNKS chunk records, default 1M)
// next to the streaming check (fsck's index check, the baseline: the
// same kind of work, external sorts joined with the records), in the
// same run: seconds per million chunk records, and the peak of the Go
// heap above what it held before (heap-MiB). Run it with -benchtime=1x.
func BenchmarkStorageUsage(b *testing.B) {
	dir, n := benchIndex(b)
	g, err := Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	mchunks := float64(n) / 1e6
	tmp := b.TempDir()
	usage := func(memory int) func(b *testing.B) error {
		return func(b *testing.B) error {
			r, err := g.StorageUsage(context.Background(), UsageOptions{TempDir: tmp, Memory: memory})
			if err != nil {
				return err
			}
			var sum int64
			for _, u := range r.Repos {
				sum += u.UniqueBytes + u.SharedBytes
			}
			if sum+r.UnattributedBytes != r.StoredBytes {
				b.Fatalf("usage sums to %d + %d unattributed, stored %d", sum, r.UnattributedBytes, r.StoredBytes)
			}
			b.ReportMetric(float64(r.SortRuns), "sort-runs")
			b.ReportMetric(float64(len(r.Repos)), "repos")
			return nil
		}
	}
	runs := []struct {
		name string
		run  func(b *testing.B) error
	}{
		{"check", func(*testing.B) error {
			_, err := g.CheckWith(context.Background(), CheckOptions{TempDir: tmp})
			return err
		}},
		{"usage", usage(0)},
		{"usage-16MiB", usage(16 << 20)},
	}
	for _, c := range runs {
		b.Run(c.name, func(b *testing.B) {
			var peak heapPeak
			for b.Loop() {
				peak.start()
				err := c.run(b)
				peak.stop()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)/mchunks, "s/Mchunks")
			b.ReportMetric(peak.maxMiB(), "heap-MiB")
			b.ReportMetric(peak.liveMiB(), "live-MiB")
		})
	}
}
