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
// offline commands share them. The write flags (pack size, chunk
// compression, read cache) belong to the commands that write packs or
// read them from S3 in bulk: serve and gc.
type storeFlags struct {
	data          string
	storage       string
	packSize      int64
	readCacheSize int64
	compression   string
	s3            s3.Options
}

func addStoreFlags(fs *flag.FlagSet, f *storeFlags) {
	f.packSize, f.readCacheSize, f.compression = chunkstore.DefaultPackSize, 0, "default"
	fs.StringVar(&f.data, "data", "./chunkyard-data", "data directory (index, staging packs, uploads; packs too with --storage fs)")
	fs.StringVar(&f.storage, "storage", "fs", "where sealed packs go: fs (under --data) or s3")
	fs.StringVar(&f.s3.Bucket, "s3-bucket", "", "S3 bucket for packs (--storage s3)")
	fs.StringVar(&f.s3.Prefix, "s3-prefix", "", "key prefix for packs in the bucket")
	fs.StringVar(&f.s3.Endpoint, "s3-endpoint", "", "S3 endpoint URL for MinIO, versitygw, Ceph, R2, ... (default: AWS, or AWS_ENDPOINT_URL_S3)")
	fs.StringVar(&f.s3.Region, "s3-region", "", "S3 region (default: from the AWS configuration, else us-east-1)")
	fs.BoolVar(&f.s3.PathStyle, "s3-path-style", true, "path-style addressing (ENDPOINT/BUCKET/KEY), which most S3-compatible servers need")
	fs.DurationVar(&f.s3.RequestTimeout, "s3-timeout", 60*time.Second, "timeout of each S3 request attempt")
	fs.IntVar(&f.s3.MaxAttempts, "s3-max-attempts", 5, "attempts per S3 request, with exponential backoff")
}

// addWriteFlags adds the flags of commands that write packs.
func addWriteFlags(fs *flag.FlagSet, f *storeFlags) {
	fs.Var((*byteSize)(&f.packSize), "pack-size", "target pack size")
	fs.StringVar(&f.compression, "chunk-compression", "default", "zstd level of new chunks: fastest, default or better")
	f.readCacheSize = 1 << 30
	fs.Var((*byteSize)(&f.readCacheSize), "read-cache-size", "pack records read from S3 kept in DATA/cache (0: none; unused with fs)")
}

// check validates the flags before anything is opened or created.
func (f storeFlags) check() error {
	if _, err := chunkstore.ParseCompression(f.compression); err != nil {
		return fmt.Errorf("--chunk-compression: %w", err)
	}
	switch f.storage {
	case "fs":
	case "s3":
		if f.s3.Bucket == "" {
			return errors.New("--storage s3 needs --s3-bucket")
		}
	default:
		return fmt.Errorf("--storage %q: want fs or s3", f.storage)
	}
	if f.packSize <= 0 {
		return fmt.Errorf("--pack-size %d: must be positive", f.packSize)
	}
	return nil
}

// openData opens the data dir of f. Only serve creates one (create);
// the other commands refuse a directory that holds no store, so that a
// mistyped --data is an error rather than an empty store.
func openData(ctx context.Context, f storeFlags, log *slog.Logger, create bool) (*dataDir, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if !create {
		if err := hasStore(f.data); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(f.data, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	d := &dataDir{}
	compression, _ := chunkstore.ParseCompression(f.compression)
	opts := chunkstore.Options{
		Dir:         filepath.Join(f.data, "store"),
		PackSize:    f.packSize,
		Compression: compression,
		Logger:      log,
	}
	if f.storage == "s3" {
		f.s3.Logger = log
		b, err := s3.New(ctx, f.s3)
		if err != nil {
			return nil, err
		}
		d.s3 = b
		opts.Backend = b
		opts.ReadCacheDir = filepath.Join(f.data, "cache")
		opts.ReadCacheSize = f.readCacheSize
	}
	// Packs first: a pack left open by a crash is recovered (and, with S3,
	// staged packs are uploaded) before anything else is served.
	store, err := chunkstore.Open(ctx, opts)
	if errors.Is(err, chunkstore.ErrLocked) {
		return nil, fmt.Errorf("data dir %s is in use by another chunkyard process (a running chunkyard serve?); this command needs it to itself: stop the server first (%w)", f.data, err)
	}
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

// hasStore checks that dir holds a chunkyard data dir.
func hasStore(dir string) error {
	for _, p := range []string{filepath.Join(dir, "store", "config.json"), filepath.Join(dir, "index")} {
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s holds no chunkyard data dir (no %s): check --data; chunkyard serve creates one", dir, p)
			}
			return fmt.Errorf("data dir: %w", err)
		}
	}
	return nil
}

func (d *dataDir) Close() error {
	return errors.Join(d.store.Close(), d.graph.Close())
}
