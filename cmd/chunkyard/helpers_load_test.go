package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// TestServeRefusesMissingEncoder: a store holding layers whose encoder
// class this build cannot write (its helper is gone) must not be served,
// or those layers could not be pulled; one that holds none starts.
func TestServeRefusesMissingEncoder(t *testing.T) {
	g, err := refgraph.Open(t.TempDir(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	empty := t.TempDir() // no helpers in it
	if err := loadHelpers(context.Background(), empty, g, slog.Default()); err != nil {
		t.Fatalf("empty store: %v", err)
	}
	d := digest.FromString("layer")
	if _, err := g.CommitPending("r", d, 10); err != nil {
		t.Fatal(err)
	}
	recipe := `{"Format":"zstd","Encoder":"klauspost-zstd","Version":"klauspost/compress v0.0.1"}`
	if err := g.ConvertBlob(d, nil, &refgraph.Layout{Encoding: []byte(recipe)}); err != nil {
		t.Fatal(err)
	}
	err = loadHelpers(context.Background(), empty, g, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "klauspost-zstd klauspost/compress v0.0.1 (1 layers)") {
		t.Fatalf("err = %v, want the missing class named", err)
	}
}
