// Command chunkyard-codec-gnu-gzip is an encoder helper that reproduces
// GNU gzip's output (shell pipelines: tar | gzip -9) by running the gzip
// binary itself: GNU gzip's deflate is its own, not zlib's or Go's, and
// its output is fixed for a given gzip release.
//
// It speaks chunkyard's helper protocol (see package codec):
//
//	chunkyard-codec-gnu-gzip version   {"Protocol":1,"Classes":{"gnu-gzip":"gnu-gzip 1.12"}}
//	chunkyard-codec-gnu-gzip encode '{"Encoder":"gnu-gzip","Level":9}'
//
// encode writes gzip's whole member for stdin as gzip -c -n -LEVEL does
// (a 10-byte header without name or time, the deflate body, the trailer);
// chunkyard replaces the header with the one it recorded. Without a gzip
// binary on PATH (or in CHUNKYARD_GZIP) it reports no classes.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

const protocol = 1

func gzipPath() (string, error) {
	if p := os.Getenv("CHUNKYARD_GZIP"); p != "" {
		return p, nil
	}
	return exec.LookPath("gzip")
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "version":
		err = version()
	case "encode":
		if len(os.Args) != 3 {
			usage()
		}
		err = encode(os.Args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chunkyard-codec-gnu-gzip:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chunkyard-codec-gnu-gzip version | encode PARAMS-JSON")
	os.Exit(2)
}

// gzipVersion returns "gnu-gzip X.Y" from gzip --version, "" if there is
// no GNU gzip.
func gzipVersion() (string, error) {
	p, err := gzipPath()
	if err != nil {
		return "", nil
	}
	cmd := exec.Command(p, "--version")
	cmd.Env = gzipEnv()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", p, err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "gzip" {
		return "", nil // not GNU gzip (busybox, pigz as gzip, ...)
	}
	return "gnu-gzip " + f[1], nil
}

// gzipEnv drops GZIP, which would add options.
func gzipEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "GZIP=") {
			env = append(env, e)
		}
	}
	return env
}

func version() error {
	v, err := gzipVersion()
	if err != nil {
		return err
	}
	classes := map[string]string{}
	if v != "" {
		classes["gnu-gzip"] = v
	}
	return json.NewEncoder(os.Stdout).Encode(struct {
		Protocol int
		Classes  map[string]string
	}{protocol, classes})
}

func encode(arg string) error {
	var p struct {
		Encoder string
		Level   int
	}
	if err := json.Unmarshal([]byte(arg), &p); err != nil {
		return err
	}
	if p.Encoder != "gnu-gzip" || p.Level < 1 || p.Level > 9 {
		return fmt.Errorf("cannot encode %s level %d", p.Encoder, p.Level)
	}
	path, err := gzipPath()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, "-c", "-n", fmt.Sprintf("-%d", p.Level))
	cmd.Env = gzipEnv()
	cmd.Stdin = bufio.NewReaderSize(os.Stdin, 256<<10)
	cmd.Stdout = os.Stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gzip: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
