package tarsplit

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestJoinFrom: from every interesting offset (0, inside headers, at and
// inside payloads, in the padding and end blocks, the end), JoinFrom
// writes the tar's rest, opening the content stream exactly where it is
// needed.
func TestJoinFrom(t *testing.T) {
	var members []member
	for i := range 12 {
		members = append(members, member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("f%02d", i), Mode: 0o644},
			body: randBytes(uint64(i), i*i*700)})
		if i%4 == 0 {
			members = append(members, member{hdr: tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("d%d/", i), Mode: 0o755}})
		}
	}
	in := makeTar(t, members, false)
	_, headers, content := roundTrip(t, in)
	offsets := []int64{0, 1, 511, 512, 513, int64(len(in)) - 1024, int64(len(in)) - 1, int64(len(in))}
	for off := int64(7); off < int64(len(in)); off += 997 {
		offsets = append(offsets, off)
	}
	for _, from := range offsets {
		var out bytes.Buffer
		opened := int64(-1)
		n, err := JoinFrom(&out, bytes.NewReader(headers), from, func(off int64) (io.Reader, error) {
			if opened >= 0 {
				t.Fatalf("content opened twice")
			}
			opened = off
			return bytes.NewReader(content[off:]), nil
		})
		if err != nil {
			t.Fatalf("from %d: %v", from, err)
		}
		if n != int64(out.Len()) || !bytes.Equal(out.Bytes(), in[from:]) {
			t.Fatalf("from %d: %d bytes written, differ from the tar's %d", from, out.Len(), len(in)-int(from))
		}
		if opened > int64(len(content)) {
			t.Fatalf("from %d: content opened at %d of %d", from, opened, len(content))
		}
	}
}

// TestJoinFromChecks: a payload after the start that does not match its
// crc64, a short or long content stream, and a start past the end fail.
func TestJoinFromChecks(t *testing.T) {
	in := smallTar(t)
	_, headers, content := roundTrip(t, in)
	join := func(from int64, content []byte) error {
		_, err := JoinFrom(io.Discard, bytes.NewReader(headers), from, func(off int64) (io.Reader, error) {
			return bytes.NewReader(content[min(off, int64(len(content))):]), nil
		})
		return err
	}
	bad := bytes.Clone(content)
	bad[len(bad)-2] ^= 1 // inside d/b's payload
	if err := join(0, bad); err == nil || !strings.Contains(err.Error(), "crc64") {
		t.Fatalf("corrupt payload: %v", err)
	}
	if err := join(0, content[:len(content)-1]); err == nil {
		t.Fatal("short content accepted")
	}
	if err := join(0, append(bytes.Clone(content), 'x')); err == nil {
		t.Fatal("long content accepted")
	}
	if err := join(int64(len(in))+1, content); err == nil {
		t.Fatal("a start past the end accepted")
	}
}
