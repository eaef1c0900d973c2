package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
)

// The layout of a data dir:
//
//	DATA/index/    Pebble index (refgraph)
//	DATA/store/    chunk store: config.json, staging/ (open packs), packs/
//	DATA/uploads/  upload sessions being spooled
type dataDir struct {
	graph *refgraph.Graph
	store *chunkstore.Store
}

type storeFlags struct {
	data     string
	packSize int64
}

func openData(ctx context.Context, f storeFlags, log *slog.Logger) (*dataDir, error) {
	if err := os.MkdirAll(f.data, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// Packs first: recovering a pack left open by a crash only makes
	// durable chunks readable; the index never points past them.
	store, err := chunkstore.Open(ctx, chunkstore.Options{
		Dir:      filepath.Join(f.data, "store"),
		PackSize: f.packSize,
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}
	graph, err := refgraph.Open(filepath.Join(f.data, "index"), log)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &dataDir{graph: graph, store: store}, nil
}

func (d *dataDir) Close() error {
	return errors.Join(d.store.Close(), d.graph.Close())
}
