package tarsplit

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/opencontainers/go-digest"
)

// member is one entry for makeTar.
type member struct {
	hdr  tar.Header
	body []byte
}

// makeTar writes members with the standard library's archive/tar, closing
// the archive (two zero blocks) unless open is set.
func makeTar(t testing.TB, members []member, open bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := m.hdr
		if h.Typeflag == tar.TypeReg || h.Typeflag == 0 {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("WriteHeader %q: %v", h.Name, err)
		}
		if _, err := tw.Write(m.body); err != nil {
			t.Fatalf("Write %q: %v", h.Name, err)
		}
	}
	var err error
	if open {
		err = tw.Flush()
	} else {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randBytes returns n pseudo-random bytes from seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// splitBytes splits in into memory.
func splitBytes(in []byte) (st Stats, headers, content []byte, err error) {
	var h, c bytes.Buffer
	st, err = Split(bytes.NewReader(in), &h, &c)
	return st, h.Bytes(), c.Bytes(), err
}

// roundTrip splits in, checks the stats, and checks that Verify, JoinTo
// and Join all give in back.
func roundTrip(t testing.TB, in []byte) (st Stats, headers, content []byte) {
	t.Helper()
	st, headers, content, err := splitBytes(in)
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	if st.TarBytes != int64(len(in)) || st.HeaderBytes != int64(len(headers)) || st.ContentBytes != int64(len(content)) {
		t.Fatalf("stats %+v for %d tar, %d header, %d content bytes", st, len(in), len(headers), len(content))
	}
	if want := digest.FromBytes(in); st.TarDigest != want {
		t.Fatalf("TarDigest %s, want %s", st.TarDigest, want)
	}
	if err := Verify(bytes.NewReader(headers), bytes.NewReader(content), st); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var out bytes.Buffer
	n, err := JoinTo(&out, bytes.NewReader(headers), bytes.NewReader(content))
	if err != nil {
		t.Fatalf("JoinTo: %v", err)
	}
	if n != int64(out.Len()) || !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("JoinTo gave %d bytes (n=%d), differing from the %d input bytes", out.Len(), n, len(in))
	}
	rc := Join(bytes.NewReader(headers), bytes.NewReader(content))
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if !bytes.Equal(got, in) {
		t.Fatalf("Join gave %d bytes differing from the %d input bytes", len(got), len(in))
	}
	return st, headers, content
}

// wantFormatError fails unless err is a *FormatError.
func wantFormatError(t testing.TB, err error) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("got error %v (%T), want *FormatError", err, err)
	}
}
