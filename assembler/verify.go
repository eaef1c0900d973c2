package assembler

import (
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
)

// verifier passes a blob's bytes through, hashing them; at the end it
// returns io.EOF only if the size and digest are right, ErrDigestMismatch
// otherwise. The caller must then abort the response.
type verifier struct {
	r    io.ReadCloser
	d    digest.Digest
	size int64
	n    int64
	h    hash.Hash
	err  error
}

// Verify wraps r, the bytes of blob d of size bytes, so that its end is
// io.EOF only if they are right, ErrDigestMismatch otherwise.
func Verify(r io.ReadCloser, d digest.Digest, size int64) io.ReadCloser {
	return newVerifier(r, d, size)
}

func newVerifier(r io.ReadCloser, d digest.Digest, size int64) *verifier {
	return &verifier{r: r, d: d, size: size, h: d.Algorithm().Hash()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.size {
		err = fmt.Errorf("%w: %s assembled to more than its %d bytes", ErrDigestMismatch, v.d, v.size)
	}
	if err == io.EOF {
		got := digest.NewDigestFromBytes(v.d.Algorithm(), v.h.Sum(nil))
		if v.n != v.size || got != v.d {
			err = fmt.Errorf("%w: %s assembled as %s (%d of %d bytes)", ErrDigestMismatch, v.d, got, v.n, v.size)
		}
	}
	v.err = err
	return n, err
}

func (v *verifier) Close() error { return v.r.Close() }
