package backendtest_test

import (
	"path/filepath"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/backendtest"
)

// TestLocalBackend runs the suite on the reference backend. It lives here
// because chunkstore's own tests cannot import this package (import cycle).
func TestLocalBackend(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) chunkstore.Backend {
		b, err := chunkstore.NewLocalBackend(filepath.Join(t.TempDir(), "packs"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
