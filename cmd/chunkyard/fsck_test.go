package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// storeWithBlobs makes a data dir holding 20 blobs, written and
// committed as a push would.
func storeWithBlobs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var sf storeFlags
	addStoreFlags(fs, &sf)
	if err := fs.Parse([]string{"--data", dir}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data, err := openData(ctx, sf, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		b := make([]byte, 600_000)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		chunks, _, err := data.store.Write(ctx, bytes.NewReader(b), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := data.graph.CommitBlob("library/test", digest.FromBytes(b), int64(len(b)), chunks); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var snakeCase = regexp.MustCompile(`^[a-z0-9_]+$`)

// checkKeys fails on any object key in v that is not snake_case.
func checkKeys(t *testing.T, path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snakeCase.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", path, k)
			}
			checkKeys(t, path+"."+k, x)
		}
	case []any:
		for _, x := range v {
			checkKeys(t, path+"[]", x)
		}
	}
}

// TestFsckJSON: `fsck --json` names its fields in snake_case as stats and
// gc do, spills its sorts under --temp-dir with a tiny --memory, and
// leaves nothing there.
func TestFsckJSON(t *testing.T) {
	data := storeWithBlobs(t)
	tmp := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fsck", "--data", data, "--json", "--temp-dir", tmp, "--memory", "2KiB"}, &out, io.Discard); err != nil {
		t.Fatalf("fsck: %v\n%s", err, out.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkKeys(t, "report", r)
	idx, _ := r["index"].(map[string]any)
	if idx["blobs"] != 20.0 || idx["drift"] != 0.0 || r["pack_problem_count"] != 0.0 || idx["sort_runs"] == 0.0 {
		t.Fatalf("report: %s", out.String())
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in the temp dir: %v", left)
	}
	out.Reset()
	if err := run(context.Background(), []string{"fsck", "--data", data}, &out, io.Discard); err != nil {
		t.Fatalf("fsck: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "20 blobs") || !strings.Contains(out.String(), "drift 0, broken references 0, pack problems 0") {
		t.Fatalf("text report:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"fsck", "--data", data, "--memory", "lots"}, io.Discard, io.Discard); err == nil {
		t.Fatal("--memory lots accepted")
	}
}
