package chunkstore

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports pins what chunkstore may import: the standard library, the
// chunker, zstd, and Pebble's file-system interface (with the helpers over
// it). It knows nothing of repos, manifests or the index.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/restic/chunker":                      true,
		"github.com/klauspost/compress/zstd":             true,
		"github.com/cockroachdb/pebble/v2/vfs":           true,
		"github.com/chunkyard/chunkyard/internal/fsutil": true,
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		if !strings.Contains(first, ".") { // standard library
			continue
		}
		if !allowed[imp] {
			t.Errorf("chunkstore imports %s", imp)
		}
	}
}
