// Package helpers holds chunkyard's encoder helpers, one nested module per
// klauspost output class that real clients write and the main module does
// not link (one build links one klauspost/compress version),
// and builds them for tests. scripts/build builds them for use, next to
// the chunkyard binary.
package helpers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// Prefix starts every helper's file name (codec.HelperPrefix).
const Prefix = "chunkyard-codec-"

// Source returns the directory holding the helper modules, one
// subdirectory each.
func Source() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("helpers: cannot locate the source")
	}
	return filepath.Dir(file), nil
}

// Build compiles every helper module into dir as Prefix+NAME, where NAME
// is its directory's name, with the go command on PATH. It returns the
// paths built.
func Build(ctx context.Context, dir string) ([]string, error) {
	src, err := Source()
	if err != nil {
		return nil, err
	}
	mods, err := filepath.Glob(filepath.Join(src, "*", "go.mod"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("helpers: %w", err)
	}
	var built []string
	for _, m := range mods {
		mod := filepath.Dir(m)
		out, err := filepath.Abs(filepath.Join(dir, Prefix+filepath.Base(mod)))
		if err != nil {
			return built, err
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return built, fmt.Errorf("helpers: building %s: %w\n%s", filepath.Base(mod), err, stderr.String())
		}
		built = append(built, out)
	}
	return built, nil
}

var shared struct {
	once sync.Once
	dir  string
	err  error
}

// BuildShared builds the helpers once per process into a temporary
// directory and returns it; tests of several packages share the go
// command's build cache, so only the first build is slow. The directory
// is left for the operating system's temporary-file cleanup.
func BuildShared() (string, error) {
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "chunkyard-helpers-")
		if shared.err == nil {
			_, shared.err = Build(context.Background(), shared.dir)
		}
	})
	return shared.dir, shared.err
}
