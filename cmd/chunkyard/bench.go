package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/chunkyard/chunkyard/bench"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/restic/chunker"
)

const benchUsage = `usage: chunkyard bench estimate [flags] [--layout DIR]... [DIR | REF]...

Estimates, without writing anything to a store, what images would take in
a plain registry, in chunkyard, and in an ideal plain-CDC store over the
layers' tars. An image is an OCI image layout directory (written by
"crane pull --format oci", "skopeo copy ... oci:DIR" or oras) or a
reference in any registry (registry.example/repo:tag or @digest; Docker
config credentials), fetched into a temporary layout that is removed
afterwards. Blobs and chunks count once across all layouts; each layout
is reported as what it adds to the ones before it.

flags:
`

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "estimate" {
		fmt.Fprint(stderr, benchUsage+"  Run \"chunkyard bench estimate -h\" for them.\n")
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			return flag.ErrHelp
		}
		return fmt.Errorf("bench: unknown subcommand %q (there is only estimate)", args[0])
	}
	return benchEstimate(ctx, args[1:], stdout, stderr)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func benchEstimate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench estimate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var layouts stringList
	fs.Var(&layouts, "layout", "an OCI image layout directory (repeatable; positional arguments too)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	details := fs.Bool("details", false, "report every blob")
	progress := fs.Bool("progress", false, "draw the progress bar even when stderr is not a terminal")
	var opts bench.Options
	fs.IntVar(&opts.MinChunk, "min-chunk", chunkstore.DefaultMinChunk, "minimum chunk size in bytes")
	fs.IntVar(&opts.AverageBits, "avg-bits", chunkstore.DefaultAverageBits, "average chunk size as a power of two")
	fs.IntVar(&opts.MaxChunk, "max-chunk", chunkstore.DefaultMaxChunk, "maximum chunk size in bytes")
	compression := fs.String("chunk-compression", "default", "zstd level of chunks, as serve's: fastest, default or better")
	fs.IntVar(&opts.Workers, "workers", 2, "blobs read at once")
	fs.Int64Var(&opts.MaxInflated, "max-inflated-size", 16<<30, "layers that decompress past this many bytes count as opaque (as in serve)")
	fs.Float64Var(&opts.MaxRatio, "max-inflate-ratio", 100, "layers that decompress past this ratio count as opaque (as in serve)")
	helperDir := fs.String("codec-helpers", "", codecHelpersUsage)
	polynomial := fs.String("polynomial", "", "chunker polynomial in hex, e.g. a store's (DATA/store/config.json); default: a fixed one, so estimates repeat")
	insecure := fs.Bool("insecure", false, "reach registries of references over plain HTTP")
	platform := fs.String("platform", "", "of an index reference, fetch only this platform (os/arch[/variant]); default: all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Flags may follow the directories.
	for fs.NArg() > 0 {
		layouts = append(layouts, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if len(layouts) == 0 {
		fs.Usage()
		return errors.New("bench estimate: no layout given")
	}

	opts.Details = *details
	if *polynomial != "" {
		p, err := strconv.ParseUint(strings.TrimPrefix(*polynomial, "0x"), 16, 64)
		if err != nil || !chunker.Pol(p).Irreducible() || chunker.Pol(p).Deg() != 53 {
			return fmt.Errorf("--polynomial %q: not an irreducible polynomial of degree 53 in hex", *polynomial)
		}
		opts.Polynomial = chunker.Pol(p)
	}
	var err error
	if opts.Compression, err = chunkstore.ParseCompression(*compression); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Without helpers the layers only they reproduce show as opaque in
	// the report, which says why.
	if err := loadCodecHelpers(ctx, *helperDir, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	layouts, cleanup, err := fetchAll(ctx, layouts, *insecure, *platform, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	e, err := bench.NewEstimator(opts)
	if err != nil {
		return err
	}
	defer e.Close()
	total, err := e.PendingBytes(layouts...)
	if err != nil {
		return err
	}
	bar := bench.NewProgress(stderr, total, *progress || isTerminal(stderr))
	for _, dir := range layouts {
		if err = e.AddLayout(ctx, dir, bar.Add); err != nil {
			break
		}
	}
	bar.Finish()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("bench estimate: interrupted: %w", err)
	}
	if err != nil {
		return err
	}
	rep := e.Report()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout)
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
