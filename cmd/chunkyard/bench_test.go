package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/bench"
	"github.com/chunkyard/chunkyard/bench/benchtest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBenchEstimateJSON(t *testing.T) {
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	before, after := benchtest.Rebuild(t, benchtest.Files(1, 30, 12<<10), 3, mtime, mtime.Add(time.Hour))
	a, b := t.TempDir(), t.TempDir()
	benchtest.WriteLayout(t, a, benchtest.Image{Layers: []benchtest.Layer{benchtest.GzipLayer(benchtest.Gzip(t, before, 6))}})
	benchtest.WriteLayout(t, b, benchtest.Image{Layers: []benchtest.Layer{benchtest.GzipLayer(benchtest.Gzip(t, after, 6))}})

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "estimate", "--json", a, "--layout", b, "--min-chunk", "4096", "--avg-bits", "14", "--max-chunk", "65536"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	tot := rep.Total
	if len(rep.Layouts) != 2 || rep.Layouts[0].Path != a || rep.Layouts[1].Path != b {
		t.Fatalf("layouts (in command-line order): %+v", rep.Layouts)
	}
	if rep.Chunker.MinChunk != 4096 || rep.Chunker.AverageBits != 14 {
		t.Fatalf("chunker: %+v", rep.Chunker)
	}
	if tot.Blobs != 4 || tot.Layers != 2 || tot.Reproduced != 2 || tot.Plain.Bytes <= tot.Chunkyard.Bytes || tot.PlainOverChunkyard <= 1 {
		t.Fatalf("total: %+v", tot)
	}
	// Not a terminal, no --progress: one final line.
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "read ") {
		t.Fatalf("stderr: %q", stderr.String())
	}
	// The JSON names scripts use.
	var raw map[string]any
	json.Unmarshal(stdout.Bytes(), &raw)
	total := raw["total"].(map[string]any)
	for _, k := range []string{"blobs", "layers", "reproduced_layers", "encoders", "plain", "chunkyard", "ideal_cdc", "plain_over_chunkyard", "plain_over_ideal_cdc"} {
		if _, ok := total[k]; !ok {
			t.Errorf("no %q in the total: %v", k, total)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if err := run(context.Background(), []string{"bench", "estimate", "--details", "--progress", a}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"plain registry", "chunkyard", "ideal plain CDC", "go-stdlib level 6", "layer gzip"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "\r") {
		t.Errorf("--progress drew no bar: %q", stderr.String())
	}
}

func TestBenchEstimateErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "estimate", "Not A Reference!"}, "neither a directory nor an image reference"},
		{[]string{"bench", "estimate", t.TempDir()}, "not an OCI image layout"},
		{[]string{"bench", "estimate"}, "no layout"},
		{[]string{"bench", "measure"}, "unknown subcommand"},
		{[]string{"bench", "estimate", "--avg-bits", "99", t.TempDir()}, "average bits"},
		{[]string{"bench", "estimate", "--polynomial", "1234", t.TempDir()}, "irreducible"},
		{[]string{"bench", "estimate", "--chunk-compression", "max", t.TempDir()}, "compression"},
	} {
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestBenchEstimateReference: an image reference is fetched from its
// registry (a running chunkyard here) into a temporary layout, estimated,
// and the layout removed.
func TestBenchEstimateReference(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--data", t.TempDir(), "--codec-helpers", t.TempDir()}, io.Discard, io.Discard)
	}()
	defer func() { cancel(); <-done }()
	ref, err := name.ParseReference(addr+"/est/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tarball := benchtest.Tar(t, benchtest.Files(3, 20, 16<<10), time.Unix(1_700_000_000, 0))
	layer := static.NewLayer(benchtest.Gzip(t, tarball, 6), types.OCILayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err = remote.Write(ref, img); err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "chunkyard-estimate-*"))
	tempsBefore := len(before)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"bench", "estimate", "--json", "--insecure", ref.String()}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	size, _ := layer.Size()
	if rep.Total.Layers != 1 || rep.Total.Reproduced != 1 || rep.Total.Plain.Bytes < size {
		t.Fatalf("report %+v", rep.Total)
	}
	if tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "chunkyard-estimate-*")); len(tmp) > tempsBefore {
		t.Fatalf("temporary layouts left behind: %v", tmp)
	}
}
