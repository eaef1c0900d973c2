// Package registrytest holds test helpers that talk to a running registry
// as a client does.
package registrytest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullVerify pulls the image ref names, reads every layer whole and checks
// its bytes against its digest, and reads the config.
func PullVerify(ref name.Reference) error {
	img, err := remote.Image(ref)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
			return fmt.Errorf("layer %s: pulled bytes hash to %s", d, got)
		}
	}
	_, err = img.RawConfigFile()
	return err
}
