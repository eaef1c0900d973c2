package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFlagsFromEnvironment(t *testing.T) {
	newFS := func() (*flag.FlagSet, *int64, *string) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return fs, fs.Int64("pack-size", 1, ""), fs.String("addr", "default", "")
	}
	t.Setenv("CHUNKYARD_PACK_SIZE", "42")
	fs, packSize, addr := newFS()
	if err := parseFlags(fs, nil); err != nil || *packSize != 42 || *addr != "default" {
		t.Fatalf("env: %d %q %v", *packSize, *addr, err)
	}
	fs, packSize, _ = newFS()
	if err := parseFlags(fs, []string{"--pack-size", "7"}); err != nil || *packSize != 7 {
		t.Fatalf("a flag must win over the environment: %d %v", *packSize, err)
	}
	t.Setenv("CHUNKYARD_PACK_SIZE", "lots")
	fs, _, _ = newFS()
	if err := parseFlags(fs, nil); err == nil || !strings.Contains(err.Error(), "CHUNKYARD_PACK_SIZE") {
		t.Fatalf("bad env value: %v", err)
	}
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServePushStats runs `serve`, pushes a blob over HTTP, stops it the
// way SIGTERM does, and reads it back through `stats --json`.
func TestServePushStats(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--addr", addr, "--data", data}, io.Discard, &syncWriter{w: &logs})
	}()
	base := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatalf("server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	blob := bytes.Repeat([]byte("chunkyard "), 100000)
	for _, repo := range []string{"a/one", "b/two"} {
		resp, err := http.Post(fmt.Sprintf("%s/v2/%s/blobs/uploads/?digest=sha256:%x", base, repo, sha256sum(blob)),
			"application/octet-stream", bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("push to %s: %s", repo, resp.Status)
		}
	}
	cancel() // what SIGINT/SIGTERM do
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"stats", "--data", data, "--json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep statsReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Blobs != 1 || rep.LogicalBytes != int64(len(blob)) || rep.LinkedBytes != 2*int64(len(blob)) || rep.Repos != 2 {
		t.Fatalf("stats = %+v", rep)
	}
	// A megabyte of one repeated word compresses and dedups well.
	if rep.StoredBytes <= 0 || rep.DedupRatio < 10 || rep.Packs != 1 || rep.OpenPacks != 0 {
		t.Fatalf("stats = %+v", rep)
	}
	out.Reset()
	if err := run(context.Background(), []string{"stats", "--data", data}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"logical bytes", "stored bytes", "dedup ratio", "chunks", "packs"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stats output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "chunkyard ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"nonsense"}, io.Discard, io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
}
