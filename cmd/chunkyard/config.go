package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/ocihttp/auth"
	"golang.org/x/crypto/bcrypt"
)

// fileConfig is what a --config file holds besides flag values: its
// sections.
type fileConfig struct {
	path string
	auth *auth.Config // [auth]; nil if absent
	gc   *gc.Config   // [gc]; nil if absent
}

// configSections are the tables a config file may have; every other key
// is a flag of the command.
var configSections = []string{"auth", "gc"}

// configPath finds --config in args (before flag parsing, so that the
// file's values can be overridden by the environment and the command
// line), else CHUNKYARD_CONFIG.
func configPath(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv(envName("config"))
}

// loadConfigFile reads a TOML config file: top-level keys set the flags
// of the same name (dashes or underscores), before the environment and
// the command line do; [auth] and [gc] are returned. An unknown key is an
// error that names it.
func loadConfigFile(fs *flag.FlagSet, path string) (*fileConfig, error) {
	fc := &fileConfig{path: path}
	if path == "" {
		return fc, nil
	}
	var raw map[string]any
	_, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := raw[k]
		name := strings.ReplaceAll(k, "_", "-")
		if slices.Contains(configSections, name) {
			if err := fc.section(name, v); err != nil {
				return nil, fmt.Errorf("--config %s: %w", path, err)
			}
			continue
		}
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return nil, fmt.Errorf("--config %s: unknown key %q (not a flag of chunkyard %s, nor a section %v)", path, k, fs.Name(), configSections)
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case bool, int64, float64:
			s = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("--config %s: key %q: want a string, number or boolean, not %T", path, k, v)
		}
		if err := f.Value.Set(s); err != nil {
			return nil, fmt.Errorf("--config %s: key %q = %q: %w", path, k, s, err)
		}
	}
	return fc, nil
}

func (fc *fileConfig) section(name string, v any) error {
	table, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("key %q: want a table [%s]", name, name)
	}
	// Each section is decoded strictly from its own TOML text.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(table); err != nil {
		return fmt.Errorf("[%s]: %w", name, err)
	}
	switch name {
	case "auth":
		var c auth.Config
		md, err := toml.NewDecoder(&buf).Decode(&c)
		if err != nil {
			return fmt.Errorf("[auth]: %w", err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return fmt.Errorf("unknown key \"auth.%s\"", und[0])
		}
		if err := c.Validate(); err != nil {
			return err
		}
		fc.auth = &c
	case "gc":
		c, err := gc.Parse(buf.Bytes())
		if err != nil {
			return fmt.Errorf("[gc]: %w", err)
		}
		fc.gc = &c
	}
	return nil
}

// htpasswdCmd prints "USER:BCRYPT-HASH" for the password on stdin's first
// line, for --htpasswd files (as htpasswd -B does).
func htpasswdCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("htpasswd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, "bcrypt cost (4-31)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" || strings.Contains(fs.Arg(0), ":") {
		return fmt.Errorf("htpasswd: want one user name (without ':'); the password is read from stdin")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("htpasswd: reading the password: %w", err)
	}
	pass := strings.TrimRight(line, "\r\n")
	if pass == "" {
		return fmt.Errorf("htpasswd: empty password on stdin")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pass), *cost)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	fmt.Fprintf(stdout, "%s:%s\n", fs.Arg(0), h)
	return nil
}
