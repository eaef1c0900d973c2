package codec

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestGoContainerRegistry: layers as crane, ko and kaniko compress them
// (go-containerregistry's tarball layers, gzip level 1 by default, zstd
// through the same level) are found in one trial.
func TestGoContainerRegistry(t *testing.T) {
	raw := genTar(t, 12, 1<<20)
	for name, opts := range map[string][]tarball.LayerOption{
		"gzip": nil,
		"zstd": {tarball.WithCompression(compression.ZStd)},
	} {
		t.Run(name, func(t *testing.T) {
			layer, err := tarball.LayerFromOpener(opener(raw), opts...)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := layer.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			blob, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			enc, ok, st := find(t, raw, blob)
			if !ok || st.Trials != 1 {
				t.Fatalf("found %s (%v) in %d trials: %+v", enc, ok, st.Trials, st)
			}
			if !bytes.Equal(encode(t, enc, raw), blob) {
				t.Errorf("%s does not reproduce the layer", enc)
			}
			t.Logf("%s", enc)
		})
	}
}
