// encode compresses stdin to stdout with the Go standard library's gzip at
// a given level (default 6), the way docker and BuildKit write layers.
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"io"
	"log"
	"os"
)

func main() {
	level := flag.Int("level", 6, "gzip level")
	flag.Parse()
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	zw, err := gzip.NewWriterLevel(out, *level)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(zw, bufio.NewReaderSize(os.Stdin, 1<<20)); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := out.Flush(); err != nil {
		log.Fatal(err)
	}
}
