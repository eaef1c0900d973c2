package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
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

// When the helper for a class is there but can write nothing (a helper
// of another build), the refusal names that helper and what it writes,
// not "build the helpers".
func TestServeRefusalNamesTheHelper(t *testing.T) {
	g, err := refgraph.Open(t.TempDir(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = version ] && echo '{\"Protocol\":1,\"Classes\":{}}'\n"
	if err := os.WriteFile(filepath.Join(dir, "chunkyard-codec-compress-v1.20.3"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("zstd layer")
	if _, err := g.CommitPending("r", d, 10); err != nil {
		t.Fatal(err)
	}
	recipe := `{"Format":"zstd","Encoder":"klauspost-zstd","Version":"klauspost/compress v1.20.3","Level":2}`
	if err := g.ConvertBlob(d, nil, &refgraph.Layout{Encoding: []byte(recipe)}); err != nil {
		t.Fatal(err)
	}
	err = loadHelpers(context.Background(), dir, g, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "chunkyard-codec-compress-v1.20.3 writes nothing") ||
		strings.Contains(err.Error(), "no encoder helper was found") {
		t.Fatalf("err = %v, want the helper named with what it writes", err)
	}
}

// TestServeNeedsNoGzip: layers recorded by the old gnu-gzip helper (class
// "gnu-gzip 1.12"), and those of the built-in GNU gzip, zlib and pigz
// encoders, are served with no helper and no gzip, pigz or python on the
// PATH: this build writes their bytes itself.
func TestServeNeedsNoGzip(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing to run
	g, err := refgraph.Open(t.TempDir(), slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for i, recipe := range []string{
		`{"Format":"gzip","Encoder":"gnu-gzip","Version":"gnu-gzip 1.12","Level":9}`,
		`{"Format":"gzip","Encoder":"gnu-gzip","Version":"gnu-gzip-1.12","Level":6}`,
		`{"Format":"gzip","Encoder":"zlib","Version":"zlib-1.2-1.3","Level":6}`,
		`{"Format":"gzip","Encoder":"pigz","Version":"pigz-2 zlib-1.2-1.3","Level":6}`,
	} {
		d := digest.FromString(recipe)
		if _, err := g.CommitPending("r", d, 10); err != nil {
			t.Fatal(err)
		}
		if err := g.ConvertBlob(d, nil, &refgraph.Layout{Encoding: []byte(recipe)}); err != nil {
			t.Fatal(err)
		}
		if err := loadHelpers(context.Background(), t.TempDir(), g, slog.Default()); err != nil {
			t.Fatalf("after recipe %d (%s): %v", i, recipe, err)
		}
	}
}
