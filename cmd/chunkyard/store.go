package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/s3"
	"github.com/chunkyard/chunkyard/refgraph"
)

// The layout of a data dir:
//
//	DATA/index/    Pebble index (refgraph)
//	DATA/store/    chunk store: config.json, staging/ (open packs, and with
//	               S3 sealed packs not yet uploaded), packs/ (fs storage)
//	DATA/cache/    read cache of pack records (S3 storage)
//	DATA/uploads/  upload sessions being spooled
//	DATA/pending/  layers acknowledged, waiting for the converter
//	DATA/layer-cache/  encoded layers for hot pulls
type dataDir struct {
	graph *refgraph.Graph
	store *chunkstore.Store
	s3    *s3.Backend // nil with fs storage
}

// storeFlags are the flags that choose and open the storage; serve and the
// offline commands share them.
type storeFlags struct {
	data          string
	storage       string
	packSize      int64
	readCacheSize int64
	compression   string
	s3            s3.Options
}

func addStoreFlags(fs *flag.FlagSet, f *storeFlags) {
	fs.StringVar(&f.data, "data", "./chunkyard-data", "data directory (index, staging packs, uploads; packs too with --storage fs)")
	fs.StringVar(&f.storage, "storage", "fs", "where sealed packs go: fs (under --data) or s3")
	fs.Int64Var(&f.packSize, "pack-size", chunkstore.DefaultPackSize, "target pack size in bytes")
	fs.StringVar(&f.compression, "chunk-compression", "default", "zstd level of new chunks: fastest, default or better")
	fs.Int64Var(&f.readCacheSize, "read-cache-size", 1<<30, "bytes of pack records read from S3 to keep in DATA/cache (0: none; unused with fs)")
	fs.StringVar(&f.s3.Bucket, "s3-bucket", "", "S3 bucket for packs (--storage s3)")
	fs.StringVar(&f.s3.Prefix, "s3-prefix", "", "key prefix for packs in the bucket")
	fs.StringVar(&f.s3.Endpoint, "s3-endpoint", "", "S3 endpoint URL for MinIO, versitygw, Ceph, R2, ... (default: AWS, or AWS_ENDPOINT_URL_S3)")
	fs.StringVar(&f.s3.Region, "s3-region", "", "S3 region (default: from the AWS configuration, else us-east-1)")
	fs.BoolVar(&f.s3.PathStyle, "s3-path-style", true, "path-style addressing (ENDPOINT/BUCKET/KEY), which most S3-compatible servers need")
	fs.DurationVar(&f.s3.RequestTimeout, "s3-timeout", 60*time.Second, "timeout of each S3 request attempt")
	fs.IntVar(&f.s3.MaxAttempts, "s3-max-attempts", 5, "attempts per S3 request, with exponential backoff")
}

func openData(ctx context.Context, f storeFlags, log *slog.Logger) (*dataDir, error) {
	if err := os.MkdirAll(f.data, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	d := &dataDir{}
	compression, err := chunkstore.ParseCompression(f.compression)
	if err != nil {
		return nil, err
	}
	opts := chunkstore.Options{
		Dir:         filepath.Join(f.data, "store"),
		PackSize:    f.packSize,
		Compression: compression,
		Logger:      log,
	}
	switch f.storage {
	case "fs":
	case "s3":
		if f.s3.Bucket == "" {
			return nil, errors.New("--storage s3 needs --s3-bucket")
		}
		f.s3.Logger = log
		b, err := s3.New(ctx, f.s3)
		if err != nil {
			return nil, err
		}
		d.s3 = b
		opts.Backend = b
		opts.ReadCacheDir = filepath.Join(f.data, "cache")
		opts.ReadCacheSize = f.readCacheSize
	default:
		return nil, fmt.Errorf("--storage %q: want fs or s3", f.storage)
	}
	// Packs first: a pack left open by a crash is recovered (and, with S3,
	// staged packs are uploaded) before anything else is served.
	store, err := chunkstore.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	d.store = store
	if d.graph, err = refgraph.Open(filepath.Join(f.data, "index"), log); err != nil {
		store.Close()
		return nil, err
	}
	return d, nil
}

func (d *dataDir) Close() error {
	return errors.Join(d.store.Close(), d.graph.Close())
}
