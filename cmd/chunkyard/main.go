// Command chunkyard runs the chunkyard registry and its maintenance tools:
//
//	chunkyard serve   run the registry
//	chunkyard stats   print storage statistics of a data dir
//	chunkyard gc      garbage collection on a stopped data dir (retention, reclaim, repack)
//	chunkyard fsck    recount the index and check packs (--repair)
//	chunkyard bench estimate  what chunkyard would store for OCI layouts
//	chunkyard version print the version
//
// Every flag can also be set by an environment variable CHUNKYARD_<FLAG>,
// upper-cased with dashes as underscores (--pack-size: CHUNKYARD_PACK_SIZE).
// A flag on the command line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "chunkyard:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: chunkyard <command> [flags]

commands:
  serve     run the registry (--addr, --data, ...)
  stats     print storage statistics of a data dir (--data, --json)
  gc        run garbage collection on a data dir no server uses (--config, --dry-run)
  fsck      recount every reference in the index and check packs (--repair)
  bench     measure chunkyard on your images: "bench estimate DIR..." estimates storage of OCI layouts
  version   print the version

Run "chunkyard <command> -h" for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "stats":
		return stats(ctx, args[1:], stdout, stderr)
	case "gc":
		return gcCmd(ctx, args[1:], stdout, stderr)
	case "fsck":
		return fsckCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		return benchCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "chunkyard", versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return strings.TrimSpace(v + " " + bi.GoVersion)
	}
	return "unknown"
}

// parseFlags parses args into fs, after taking defaults from CHUNKYARD_*
// environment variables.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		env := "CHUNKYARD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	return fs.Parse(args)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
