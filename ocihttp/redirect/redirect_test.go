package redirect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// The verifier passes exact bytes on and, on a mismatch, fails the read
// that would complete them, so a reader of exactly size bytes (as the S3
// backend's part reads are) never gets the whole object.
func TestVerifier(t *testing.T) {
	data := bytes.Repeat([]byte("chunkyard"), 100000)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	for _, r := range []func([]byte) io.Reader{
		func(b []byte) io.Reader { return bytes.NewReader(b) },
		func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	} {
		v := &verifier{r: r(data), h: sha256.New(), want: want, left: int64(len(data))}
		got, err := io.ReadAll(v)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("good bytes: %d bytes, %v", len(got), err)
		}
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 1
		v = &verifier{r: r(bad), h: sha256.New(), want: want, left: int64(len(bad))}
		buf := make([]byte, len(bad))
		n, err := io.ReadFull(v, buf)
		if !errors.Is(err, errMismatch) || n == len(bad) {
			t.Fatalf("bad bytes: read %d of %d, err %v", n, len(bad), err)
		}
		short := data[:len(data)-1]
		v = &verifier{r: r(short), h: sha256.New(), want: want, left: int64(len(data))}
		if _, err := io.ReadAll(v); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("short blob: %v", err)
		}
	}
}
