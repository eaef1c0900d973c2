// Command chunkyard runs the chunkyard registry and its maintenance tools:
//
//	chunkyard serve   run the registry
//	chunkyard stats   print storage statistics of a data dir
//	chunkyard gc      garbage collection on a stopped data dir (retention, reclaim, repack)
//	chunkyard fsck    recount the index and check packs (--repair)
//	chunkyard scan    an image's vulnerability report (from a server or a data dir)
//	chunkyard vulndb import  OSV advisories into a data dir or a running server
//	chunkyard bench estimate  what chunkyard would store for OCI layouts
//	chunkyard htpasswd USER  a bcrypt htpasswd line for --htpasswd
//	chunkyard version print the version
//
// Every flag can also be set by an environment variable CHUNKYARD_<FLAG>,
// upper-cased with dashes as underscores (--pack-size: CHUNKYARD_PACK_SIZE).
// A flag on the command line wins over the environment.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode is the exit status for run's error: 0 for none or for -h
// (the usage was asked for), 2 for a missing command, else 1 with the
// error printed.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil || isHelp(err):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "chunkyard:", err)
	return 1
}

// errUsage: the command line named no command; the usage was printed.
var errUsage = errors.New("usage")

const usage = `usage: chunkyard <command> [flags]

commands:
  serve     run the registry (--addr, --data, ...)
  stats     print storage statistics of a data dir (--data, --json)
  gc        run garbage collection on a data dir no server uses (--config, --dry-run)
  fsck      recount every reference in the index and check packs (--repair)
  scan      print an image's vulnerability report: "scan REPO:TAG|REPO@DIGEST" (--server, --data, --format)
  vulndb    "vulndb import PATH": import OSV advisories (--data, or --admin-addr of a running server)
  bench     measure chunkyard on your images: "bench estimate DIR..." estimates storage of OCI layouts
  htpasswd  "htpasswd [--cost N] USER": print a bcrypt htpasswd line, password read from stdin
  version   print the version

Run "chunkyard <command> -h" for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
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
	case "scan":
		return scanCmd(ctx, args[1:], stdout, stderr)
	case "vulndb":
		return vulndbCmd(ctx, args[1:], stdout, stderr)
	case "htpasswd":
		return htpasswdCmd(args[1:], os.Stdin, stdout, stderr) // config.go
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

// versionString is the release (set with -ldflags "-X main.version=...",
// as scripts/build does from git describe) or the module version, with
// the commit, its time and whether the tree was modified, and the Go
// toolchain.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if version != "" {
			return version
		}
		return "unknown (no build information)"
	}
	v := version
	if v == "" {
		v = bi.Main.Version
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	out := v
	if rev != "" {
		out += " commit " + rev[:min(12, len(rev))]
		if dirty {
			out += " (modified)"
		}
		if at != "" {
			out += " " + at
		}
	}
	return out + " " + bi.GoVersion
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
