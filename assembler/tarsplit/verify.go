package tarsplit

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// Verify joins headers and content and checks that the result is the tar
// that Split read: want.TarBytes long with sha256 want.TarDigest. Run it
// on the streams as stored (read back) before committing to a split.
func Verify(headers, content io.Reader, want Stats) error {
	h := sha256.New()
	n, err := JoinTo(h, headers, content)
	if err != nil {
		return fmt.Errorf("tarsplit: verify: %w", err)
	}
	got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	if n != want.TarBytes || got != want.TarDigest {
		return fmt.Errorf("tarsplit: verify: joined %d bytes with digest %s, want %d bytes with %s",
			n, got, want.TarBytes, want.TarDigest)
	}
	return nil
}
