package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chunkyard.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigFileFlagsEnvOrder: the file sets any flag by its name
// (dashes or underscores), the environment overrides the file, the
// command line overrides both.
func TestConfigFileFlagsEnvOrder(t *testing.T) {
	cfg := writeConfig(t, `
addr = "127.0.0.1:7000"
pack_size = "8MiB"
io-timeout = "5s"
verbose = true

[gc]
interval = "2h"
`)
	newFS := func() (*flag.FlagSet, *string, *int64, *time.Duration, *bool) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("config", "", "")
		return fs, fs.String("addr", "x", ""), sizeFlag(fs, "pack-size", 1, ""), fs.Duration("io-timeout", 0, ""), fs.Bool("verbose", false, "")
	}
	load := func(args ...string) (*fileConfig, string, int64, time.Duration, bool) {
		t.Helper()
		fs, addr, pack, io, verbose := newFS()
		fc, err := loadConfigFile(fs, configPath(args))
		if err != nil {
			t.Fatal(err)
		}
		if err := parseFlags(fs, args); err != nil {
			t.Fatal(err)
		}
		return fc, *addr, *pack, *io, *verbose
	}
	fc, addr, pack, iot, verbose := load("--config", cfg)
	if addr != "127.0.0.1:7000" || pack != 8<<20 || iot != 5*time.Second || !verbose {
		t.Errorf("from the file: %q %d %v %v", addr, pack, iot, verbose)
	}
	if fc.gc == nil || fc.gc.Interval.D() != 2*time.Hour {
		t.Errorf("[gc] not read: %+v", fc.gc)
	}
	t.Setenv("CHUNKYARD_ADDR", "127.0.0.1:7001")
	_, addr, _, _, _ = load("--config=" + cfg)
	if addr != "127.0.0.1:7001" {
		t.Errorf("the environment must override the file: %q", addr)
	}
	_, addr, _, _, _ = load("--config", cfg, "--addr", "127.0.0.1:7002")
	if addr != "127.0.0.1:7002" {
		t.Errorf("a flag must override both: %q", addr)
	}
	t.Setenv("CHUNKYARD_CONFIG", cfg)
	_, _, pack, _, _ = load()
	if pack != 8<<20 {
		t.Errorf("CHUNKYARD_CONFIG not read: %d", pack)
	}
}

// TestConfigFileErrorsNameTheKey: serve refuses a bad config file before
// it creates anything, naming the key.
func TestConfigFileErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{`adr = "127.0.0.1:1"`, `unknown key "adr"`},
		{`pack-size = "lots"`, `key "pack-size"`},
		{`addr = ["a"]`, `key "addr": want a string`},
		{"[auth]\nhtpasswd = \"/nonexistent\"\nrelam = \"x\"\n", `unknown key "auth.relam"`},
		{"[auth]\nhtpasswd = \"/nonexistent\"\n[[auth.access]]\nrepos = [\"a\"]\nusers = [\"u\"]\nactions = [\"pul\"]\n", `auth.access[0].actions`},
		{"[auth]\nhtpasswd = \"/nonexistent\"\n", `auth.htpasswd`},
		{"[gc]\nintervall = \"1h\"\n", `unknown keys`},
		{"[metrics]\nx = 1\n", `unknown key "metrics"`},
	} {
		data := filepath.Join(t.TempDir(), "data")
		err := run(context.Background(), []string{"serve", "--config", writeConfig(t, c.text), "--data", data, "--addr", "127.0.0.1:0"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("%q: the data dir was created", c.text)
		}
	}
}
