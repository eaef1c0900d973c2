// Command chunkyard-codec-compress-v1.20.3 is an encoder helper: it
// encodes stdin to stdout with the klauspost encoders of
// github.com/klauspost/compress v1.20.3 (and klauspost/pgzip v1.2.6 on top
// of it), an output class the chunkyard binary, pinned to another
// klauspost/compress version, cannot produce itself. regctl v0.11.7 writes
// zstd layers in this class.
//
// It is a module of its own so that its klauspost/compress version stays
// out of chunkyard's. The chunkyard side (package assembler/codec) finds
// it next to the chunkyard binary or in --codec-helpers, asks it
//
//	chunkyard-codec-compress-v1.20.3 version
//
// which prints {"Protocol":1,"Classes":{encoder: class}}, and runs
//
//	chunkyard-codec-compress-v1.20.3 encode '{"Encoder":...,"Level":...}'
//
// for each encode, streaming raw bytes in and the encoder's output out.
// It writes only what the encoder itself writes: raw deflate for
// klauspost-gzip (the caller writes the gzip header and trailer), pgzip's
// whole member with its default header for klauspost-pgzip, a zstd frame
// for klauspost-zstd. Errors go to stderr with exit status 1 (2: usage).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// protocol is the version of the argv/stdin/stdout protocol above.
const protocol = 1

// Encoder names, as in chunkyard's codec package.
const (
	encKlauspostGzip = "klauspost-gzip"
	encPgzip         = "klauspost-pgzip"
	encKlauspostZstd = "klauspost-zstd"
)

// params are an encode's parameters; their meaning is codec.Encoding's.
type params struct {
	Encoder     string
	Level       int
	BlockSize   int   // pgzip
	Concurrency int   // pgzip blocks, zstd goroutines in flight (neither shapes the output)
	Checksum    bool  // zstd
	WindowSize  int   // zstd; 0: the level's
	ContentSize int64 // zstd; 0: none declared
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "version":
		err = printVersion(os.Stdout)
	case "encode":
		if len(os.Args) != 3 {
			usage()
		}
		var p params
		if err = json.Unmarshal([]byte(os.Args[2]), &p); err == nil {
			err = encode(os.Stdout, os.Stdin, p)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chunkyard-codec:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chunkyard-codec-compress-v1.20.3 version | encode PARAMS-JSON")
	os.Exit(2)
}

// printVersion reports the output class of each encoder, read from the
// binary's own build information so that a helper built with other
// versions says so.
func printVersion(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build information")
	}
	mods := map[string]string{}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		mods[d.Path] = v
	}
	compress := "klauspost/compress " + mods["github.com/klauspost/compress"]
	out := struct {
		Protocol int
		Classes  map[string]string
	}{protocol, map[string]string{
		encKlauspostGzip: compress,
		encKlauspostZstd: compress,
		encPgzip:         "klauspost/pgzip " + mods["github.com/klauspost/pgzip"] + " " + compress,
	}}
	return json.NewEncoder(w).Encode(out)
}

func encode(dst io.Writer, src io.Reader, p params) error {
	out := bufio.NewWriterSize(dst, 256<<10)
	var (
		enc io.WriteCloser
		err error
	)
	switch p.Encoder {
	case encKlauspostGzip:
		enc, err = flate.NewWriter(out, p.Level)
	case encPgzip:
		var pw *pgzip.Writer
		if pw, err = pgzip.NewWriterLevel(out, p.Level); err == nil {
			err = pw.SetConcurrency(p.BlockSize, max(p.Concurrency, 1))
		}
		enc = pw
	case encKlauspostZstd:
		opts := []zstd.EOption{
			zstd.WithEncoderLevel(zstd.EncoderLevel(p.Level)),
			zstd.WithEncoderCRC(p.Checksum),
			zstd.WithEncoderConcurrency(max(p.Concurrency, 1)),
		}
		if p.WindowSize != 0 {
			opts = append(opts, zstd.WithWindowSize(p.WindowSize))
		}
		var ze *zstd.Encoder
		if ze, err = zstd.NewWriter(nil, opts...); err == nil {
			if p.ContentSize > 0 {
				ze.ResetContentSize(out, p.ContentSize)
			} else {
				ze.Reset(out)
			}
		}
		enc = ze
	default:
		return fmt.Errorf("unknown encoder %q", p.Encoder)
	}
	if err != nil {
		return fmt.Errorf("%s level %d: %w", p.Encoder, p.Level, err)
	}
	if _, err := io.CopyBuffer(enc, src, make([]byte, 256<<10)); err != nil {
		enc.Close()
		return fmt.Errorf("encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("closing encoder: %w", err)
	}
	return out.Flush()
}
