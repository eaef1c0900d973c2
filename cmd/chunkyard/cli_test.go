package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What a new user trips over: a mistyped --data, a busy port, -h.
func TestOfflineCommandsRefuseAMissingDataDir(t *testing.T) {
	for _, cmd := range []string{"stats", "gc", "fsck"} {
		dir := filepath.Join(t.TempDir(), "typo")
		err := run(context.Background(), []string{cmd, "--data", dir}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "holds no chunkyard data dir") {
			t.Errorf("%s on a missing data dir: %v", cmd, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s created %s", cmd, dir)
		}
	}
}

func TestServeValidatesBeforeCreating(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, args := range [][]string{
		{"--addr", busy.Addr().String()},
		{"--addr", "127.0.0.1:0", "--storage", "nfs"},
		{"--addr", "127.0.0.1:0", "--chunk-compression", "max"},
		{"--addr", "127.0.0.1:0", "--layer-cache-size", "lots"},
		{"--addr", "127.0.0.1:0", "--upstream", "ftp://mirror"},
		{"--addr", "127.0.0.1:0", "--upstream", "https://r.example/v2"},
		{"--addr", "127.0.0.1:0", "--upstream", "https://r.example", "--upstream-username", "u"},
		{"--addr", "127.0.0.1:0", "--upstream-username", "u", "--upstream-password-file", "/dev/null"},
		{"--addr", "127.0.0.1:0", "--upstream", "https://r.example", "--upstream-username", "u", "--upstream-password-file", "/nonexistent/pw"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		err := run(context.Background(), append([]string{"serve", "--data", dir}, args...), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("serve %v started", args)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve %v created the data dir before failing", args)
		}
	}
}

func TestHelpExitsZeroAndListsOwnFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "stats", "gc", "fsck", "bench"} {
		var out bytes.Buffer
		args := []string{cmd, "-h"}
		if cmd == "bench" {
			args = []string{cmd, "estimate", "--help"}
		}
		err := run(context.Background(), args, &out, &out)
		if code := exitCode(err, io.Discard); code != 0 {
			t.Errorf("%s -h: exit %d (%v)", cmd, code, err)
		}
		if cmd != "bench" && !strings.Contains(out.String(), "CHUNKYARD_DATA") {
			t.Errorf("%s -h does not mention the environment variables:\n%s", cmd, out.String())
		}
		if (cmd == "stats" || cmd == "fsck") && strings.Contains(out.String(), "-pack-size") {
			t.Errorf("%s -h lists serve's --pack-size", cmd)
		}
	}
	if code := exitCode(run(context.Background(), nil, io.Discard, io.Discard), io.Discard); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"1048576": 1 << 20, "4GiB": 4 << 30, "4 GiB": 4 << 30, "4g": 4 << 30, "512MiB": 512 << 20,
		"2GB": 2e9, "1.5KiB": 1536, "0": 0, "64k": 64 << 10}
	for s, want := range good {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GiB", "4 parsecs", "-1", "1e400"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) accepted", s)
		}
	}
	if got := formatSize(4 << 30); got != "4GiB" {
		t.Errorf("formatSize = %q", got)
	}
}

func TestLockedDataDirIsExplained(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var sf storeFlags
	sf.data, sf.storage, sf.packSize, sf.compression = dir, "fs", 1<<20, "default"
	d, err := openData(ctx, sf, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = run(ctx, []string{"stats", "--data", dir}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another chunkyard process") {
		t.Fatalf("stats on a data dir in use: %v", err)
	}
}

func TestVersionNamesTheToolchain(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "go1.") {
		t.Errorf("version = %q", out.String())
	}
}
