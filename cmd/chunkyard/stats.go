package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/chunkyard/chunkyard/bench"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/ops"
	"github.com/chunkyard/chunkyard/refgraph"
	"io"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// maxListed bounds the conversions stats lists one by one.
const maxListed = 20

// statsReport is what `chunkyard stats` prints; its JSON names are an
// interface for scripts.
type statsReport struct {
	LogicalBytes    int64   `json:"logical_bytes"`
	StoredBytes     int64   `json:"stored_bytes"`
	DedupRatio      float64 `json:"dedup_ratio"`
	LinkedBytes     int64   `json:"linked_bytes"`
	Repos           int64   `json:"repos"`
	Blobs           int64   `json:"blobs"`
	Chunks          int64   `json:"chunks"`
	SharedChunks    int64   `json:"shared_chunks"`
	ChunkRawBytes   int64   `json:"chunk_raw_bytes"`
	LiveStoredBytes int64   `json:"live_stored_bytes"`
	Packs           int     `json:"packs"`
	OpenPacks       int     `json:"open_packs"`
	ReadCacheBytes  int64   `json:"read_cache_bytes"`
	LayerCacheBytes int64   `json:"layer_cache_bytes"`
	PendingBlobs    int64   `json:"pending_conversions"`
	PendingBytes    int64   `json:"pending_bytes"`
	ConvertedBlobs  int64   `json:"converted_blobs"`
	// Retrying lists queued conversions that failed at least once (at
	// most maxListed); Failed, conversions abandoned after repeated
	// failures, whose blobs stay as received.
	Retrying    []refgraph.QueueEntry       `json:"conversions_retrying"`
	FailedCount int64                       `json:"failed_conversions"`
	Failed      []refgraph.FailedConversion `json:"failed_conversions_list"`
	// Encodings counts split layers per encoder output class, the
	// encoder and the version of the code whose output they reproduce.
	Encodings map[string]int64 `json:"encodings"`
	// PackLiveHistogram counts indexed packs by live fraction: element i
	// holds packs [10i%, 10i+10%) live, the last one also 100%.
	PackLiveHistogram [10]int64 `json:"pack_live_histogram"`
	RetiredPacks      int64     `json:"retired_packs"` // repacked, deleted after the pack grace period
	S3Objects         int       `json:"s3_objects,omitempty"`
	S3Bytes           int64     `json:"s3_bytes,omitempty"`
	// Usage is storage usage per repository and namespace (--repos).
	Usage *refgraph.UsageReport `json:"usage,omitempty"`
}

func stats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	asJSON := fs.Bool("json", false, "print JSON")
	repos := fs.Bool("repos", false, "also compute storage usage per repository and namespace: unique bytes (held by it alone) and its share of the bytes it holds with others (reads the whole index)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	data, err := openData(ctx, sf, log, false)
	if err != nil {
		return err
	}
	defer data.Close()
	st, err := data.store.Stats(ctx)
	if err != nil {
		return err
	}
	g := data.graph.Stats()
	rep := statsReport{
		LogicalBytes:    g.LogicalBytes,
		StoredBytes:     ops.StoredBytes(st, g), // as the metric chunkyard_stored_bytes
		LinkedBytes:     g.LinkedBytes,
		Repos:           g.Repos,
		Blobs:           g.Blobs,
		Chunks:          g.Chunks,
		SharedChunks:    g.SharedChunks,
		ChunkRawBytes:   g.ChunkRawBytes,
		LiveStoredBytes: g.LiveStoredBytes,
		Packs:           st.Packs,
		OpenPacks:       st.OpenPacks,
		ReadCacheBytes:  st.CacheBytes,
		PendingBlobs:    g.PendingConversions,
		PendingBytes:    g.PendingBytes,
		ConvertedBlobs:  g.ConvertedBlobs,
	}
	if rep.Encodings, err = data.graph.Encodings(); err != nil {
		return err
	}
	rep.Retrying, rep.Failed = []refgraph.QueueEntry{}, []refgraph.FailedConversion{}
	rep.FailedCount = g.FailedConversions
	if err := data.graph.Queue(func(e refgraph.QueueEntry) error {
		if e.Attempts > 0 && len(rep.Retrying) < maxListed {
			rep.Retrying = append(rep.Retrying, e)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := data.graph.FailedConversions(func(f refgraph.FailedConversion) error {
		if len(rep.Failed) < maxListed {
			rep.Failed = append(rep.Failed, f)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := data.graph.Packs(func(p refgraph.Pack) error {
		if retired, err := data.graph.Retired(p.Name); err != nil || retired {
			rep.RetiredPacks++
			return err
		}
		i := 9
		if p.TotalBytes > 0 {
			i = min(int(10*p.LiveBytes/p.TotalBytes), 9)
		}
		rep.PackLiveHistogram[i]++
		return nil
	}); err != nil {
		return err
	}
	if lc, err := chunkstore.OpenFileCache(filepath.Join(sf.data, "layer-cache"), math.MaxInt64, log); err == nil {
		_, rep.LayerCacheBytes = lc.Usage()
	}
	if data.s3 != nil {
		if rep.S3Objects, rep.S3Bytes, err = data.s3.Usage(ctx); err != nil {
			return err
		}
	}
	if rep.StoredBytes > 0 {
		rep.DedupRatio = float64(rep.LogicalBytes) / float64(rep.StoredBytes)
	}
	if *repos {
		if rep.Usage, err = data.graph.StorageUsage(ctx, refgraph.UsageOptions{TempDir: sf.data}); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "logical bytes\t%d\t(%s, sum of stored blob sizes)\n", rep.LogicalBytes, bench.HumanBytes(rep.LogicalBytes))
	fmt.Fprintf(tw, "stored bytes\t%d\t(%s, pack bytes on the backend, plus blobs pending conversion)\n", rep.StoredBytes, bench.HumanBytes(rep.StoredBytes))
	fmt.Fprintf(tw, "dedup ratio\t%.2fx\t(logical / stored)\n", rep.DedupRatio)
	fmt.Fprintf(tw, "linked bytes\t%d\t(%s, blob sizes summed over every repository that links them)\n", rep.LinkedBytes, bench.HumanBytes(rep.LinkedBytes))
	fmt.Fprintf(tw, "repositories\t%d\t\n", rep.Repos)
	fmt.Fprintf(tw, "blobs\t%d\t\n", rep.Blobs)
	fmt.Fprintf(tw, "chunks\t%d\t(%s raw, %s stored, %d shared by several blobs or places)\n", rep.Chunks, bench.HumanBytes(rep.ChunkRawBytes), bench.HumanBytes(rep.LiveStoredBytes), rep.SharedChunks)
	fmt.Fprintf(tw, "packs\t%d\t(+%d open or staged)\n", rep.Packs, rep.OpenPacks)
	fmt.Fprintf(tw, "packs by live fraction\t\t(%d retired, waiting for deletion)\n", rep.RetiredPacks)
	for i, n := range rep.PackLiveHistogram {
		fmt.Fprintf(tw, "  %3d-%3d%%\t%d\t%s\n", 10*i, 10*i+10, n, strings.Repeat("#", int(min(n, 60))))
	}
	fmt.Fprintf(tw, "layers split\t%d\t(stored as header + content streams, re-encoded on pull)\n", rep.ConvertedBlobs)
	for _, class := range slices.Sorted(maps.Keys(rep.Encodings)) {
		fmt.Fprintf(tw, "  encoded by\t%d\t%s\n", rep.Encodings[class], class)
	}
	fmt.Fprintf(tw, "pending\t%d\t(%s received, waiting for the converter)\n", rep.PendingBlobs, bench.HumanBytes(rep.PendingBytes))
	for _, e := range rep.Retrying {
		fmt.Fprintf(tw, "  retrying\t%s\t%d failed attempts, next at %s: %s\n", e.Digest, e.Attempts, e.Due.Format(time.RFC3339), e.LastError)
	}
	fmt.Fprintf(tw, "conversions abandoned\t%d\t(blobs kept as received after repeated failures)\n", rep.FailedCount)
	for _, f := range rep.Failed {
		fmt.Fprintf(tw, "  failed\t%s\t%d attempts, last at %s: %s\n", f.Digest, f.Attempts, f.At.Format(time.RFC3339), f.LastError)
	}
	fmt.Fprintf(tw, "layer cache\t%d\t(%s of encoded layers, a cache, not storage)\n", rep.LayerCacheBytes, bench.HumanBytes(rep.LayerCacheBytes))
	if data.s3 != nil {
		fmt.Fprintf(tw, "s3 objects\t%d\t(%s in the bucket under the prefix)\n", rep.S3Objects, bench.HumanBytes(rep.S3Bytes))
		fmt.Fprintf(tw, "read cache\t%d\t(%s, a cache, not storage)\n", rep.ReadCacheBytes, bench.HumanBytes(rep.ReadCacheBytes))
	}
	if rep.Usage != nil {
		printUsage(tw, rep.Usage) // usage.go
	}
	return tw.Flush()
}
