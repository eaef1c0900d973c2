// Command zstd-v1.20.3 compresses stdin to stdout with klauspost zstd
// v1.20.3 at the level given (1 fastest .. 4 best; 2 is the default that
// zstd.NewWriter uses, as regctl v0.11.7 does). It made
// ../zstd-default-v1.20.3.zst from genTar(seed 8, 400 KiB):
//
//	go build -o /tmp/z . && /tmp/z 2 < raw.tar > ../zstd-default-v1.20.3.zst
//
// It is a module of its own so that v1.20.3 stays out of chunkyard's.
package main

import (
	"io"
	"os"
	"strconv"

	"github.com/klauspost/compress/zstd"
)

func main() {
	l, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	w, err := zstd.NewWriter(os.Stdout, zstd.WithEncoderLevel(zstd.EncoderLevel(l)))
	if err != nil {
		panic(err)
	}
	if _, err := io.Copy(w, os.Stdin); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
}
