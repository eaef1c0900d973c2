package tarsplit

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// smallTar is a few files with payloads, for corruption tests.
func smallTar(t testing.TB) []byte {
	return makeTar(t, []member{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "a", Mode: 0o644}, body: []byte("alpha payload")},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "d/b", Mode: 0o644}, body: randBytes(20, 3000)},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "d/c", Mode: 0o644}, body: []byte("c")},
	}, false)
}

func joinBytes(headers, content []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := JoinTo(&out, bytes.NewReader(headers), bytes.NewReader(content))
	return out.Bytes(), err
}

func TestJoinMismatch(t *testing.T) {
	in := smallTar(t)
	st, headers, content := roundTrip(t, in)
	flipped := append([]byte{}, content...)
	flipped[20] ^= 0x40
	endFixed := append([]byte{}, headers...)
	endFixed[len(endFixed)-1]++ // entries count in the end record
	tests := []struct {
		name             string
		headers, content []byte
		want             string
	}{
		{"content short", headers, content[:len(content)-1], "short"},
		{"content empty", headers, nil, "short"},
		{"content long", headers, append(append([]byte{}, content...), 'x'), "longer"},
		{"content corrupt", headers, flipped, "checksum"},
		{"headers empty", nil, content, "magic"},
		{"headers bad magic", append([]byte("TSPL\x02"), headers[5:]...), content, "magic"},
		{"headers trailing byte", append(append([]byte{}, headers...), 0), content, "after end record"},
		{"end record wrong", endFixed, content, "end record"},
		{"unknown record", append([]byte(magic), 'Q'), content, "unknown record"},
		{"segment too long", binary.AppendUvarint([]byte(magic+"S"), maxSegment+1), content, "exceeds"},
		{"segment empty", binary.AppendUvarint([]byte(magic+"S"), 0), content, "empty segment"},
		{"segment truncated", binary.AppendUvarint([]byte(magic+"S"), maxSegment), content, "unexpected EOF"},
		{"huge entry", append(binary.AppendUvarint([]byte(magic+"F"), 1<<62), make([]byte, 8)...), content, "short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := joinBytes(tc.headers, tc.content)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("JoinTo error %v, want one mentioning %q", err, tc.want)
			}
			if err := Verify(bytes.NewReader(tc.headers), bytes.NewReader(tc.content), st); err == nil {
				t.Fatal("Verify succeeded")
			}
			rc := Join(bytes.NewReader(tc.headers), bytes.NewReader(tc.content))
			defer rc.Close()
			if _, err := io.ReadAll(rc); err == nil {
				t.Fatal("Join's reader ended without error")
			}
		})
	}
	// Verify also checks the stats it is given.
	wrong := st
	wrong.TarDigest = digest.Digest("sha256:" + strings.Repeat("0", 64))
	if err := Verify(bytes.NewReader(headers), bytes.NewReader(content), wrong); err == nil {
		t.Fatal("Verify accepted a wrong digest")
	}
}

// Every proper prefix of a header stream is truncated, and Join says so.
func TestJoinTruncatedHeaders(t *testing.T) {
	_, headers, content := roundTrip(t, smallTar(t))
	for n := range len(headers) {
		if _, err := joinBytes(headers[:n], content); err == nil {
			t.Fatalf("header stream cut to %d of %d bytes joined without error", n, len(headers))
		}
	}
}

// strictReader fails a test that reads past want bytes, except for one
// final one-byte read at exactly want (the end check).
type strictReader struct {
	t    *testing.T
	r    *bytes.Reader
	want int64
	off  int64
}

func (s *strictReader) Read(p []byte) (int, error) {
	if s.off+int64(len(p)) > s.want && !(s.off == s.want && len(p) == 1) {
		s.t.Errorf("read of %d bytes at content offset %d, past the %d bytes accounted for", len(p), s.off, s.want)
	}
	n, err := s.r.Read(p)
	s.off += int64(n)
	return n, err
}

func TestJoinReadsNoExtraContent(t *testing.T) {
	in := makeTar(t, []member{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "big"}, body: randBytes(21, 300_000)},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "small"}, body: []byte("s")},
	}, false)
	_, headers, content := roundTrip(t, in)
	// More content than accounted for is there to be read, but must not be.
	extra := append(append([]byte{}, content...), "EXTRA"...)
	sr := &strictReader{t: t, r: bytes.NewReader(extra), want: int64(len(content))}
	var out bytes.Buffer
	_, err := JoinTo(&out, bytes.NewReader(headers), sr)
	if err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("JoinTo error %v, want content too long", err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatal("output before the end check differs from the tar")
	}
}

// Closing Join's reader early stops its goroutine.
func TestJoinCloseEarly(t *testing.T) {
	in := makeTar(t, []member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "big"}, body: randBytes(22, 4<<20)}}, false)
	_, headers, content := roundTrip(t, in)
	before := runtime.NumGoroutine()
	for range 10 {
		rc := Join(bytes.NewReader(headers), bytes.NewReader(content))
		if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after closing, %d before", n, before)
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// Payloads stream: splitting and joining a 32 MiB file allocates a small
// fixed amount, not the file.
func TestStreamingMemory(t *testing.T) {
	in := makeTar(t, []member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "big"}, body: randBytes(23, 32<<20)}}, false)
	var headers bytes.Buffer
	var st Stats
	var err error
	splitAlloc := allocated(func() { st, err = Split(bytes.NewReader(in), &headers, io.Discard) })
	if err != nil {
		t.Fatal(err)
	}
	var content bytes.Buffer
	if _, err := Split(bytes.NewReader(in), io.Discard, &content); err != nil {
		t.Fatal(err)
	}
	joinAlloc := allocated(func() {
		_, err = JoinTo(io.Discard, bytes.NewReader(headers.Bytes()), bytes.NewReader(content.Bytes()))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("split allocated %d bytes, join %d, for a %d-byte tar", splitAlloc, joinAlloc, st.TarBytes)
	if splitAlloc > 2<<20 || joinAlloc > 2<<20 {
		t.Fatalf("split allocated %d bytes, join %d: payload buffered?", splitAlloc, joinAlloc)
	}
}

// A header claiming a huge size, or chained extension headers past the
// segment cap, cost bounded memory and give a FormatError.
func TestHostileInputs(t *testing.T) {
	t.Run("huge size", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "huge", Size: 1 << 40}); err != nil {
			t.Fatal(err)
		}
		in := append(buf.Bytes(), randBytes(24, 100_000)...)
		var err error
		alloc := allocated(func() { _, _, _, err = splitBytes(in) })
		wantFormatError(t, err)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("error %v, want it to wrap io.ErrUnexpectedEOF", err)
		}
		if alloc > 2<<20 {
			t.Errorf("allocated %d bytes", alloc)
		}
	})

	// One PAX header with a ~1 MiB record, repeated: the parser takes a
	// chain of them, each replacing the last.
	bigPAX := makeTar(t, []member{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "f", Format: tar.FormatPAX,
		PAXRecords: map[string]string{"GOLANG.big": strings.Repeat("v", 1_000_000)}}, body: []byte("body")}}, false)
	paxLen := 512 + (1_000_016+511)/512*512
	chain := func(k int) []byte {
		return append(bytes.Repeat(bigPAX[:paxLen], k), bigPAX[paxLen:]...)
	}
	t.Run("chained PAX under the cap", func(t *testing.T) {
		roundTrip(t, chain(5))
	})
	t.Run("chained PAX over the cap", func(t *testing.T) {
		// The parser allocates per PAX header; Split stops at the cap, so
		// a longer chain costs no more.
		var allocs [2]uint64
		for i, k := range []int{12, 60} {
			in := chain(k)
			var err error
			allocs[i] = allocated(func() { _, _, _, err = splitBytes(in) })
			wantFormatError(t, err)
			if !strings.Contains(err.Error(), "segment exceeds") {
				t.Fatalf("got %v, want the segment cap", err)
			}
		}
		t.Logf("allocated %d bytes for 12 chained 1 MB PAX headers, %d for 60", allocs[0], allocs[1])
		if allocs[1] > allocs[0]+allocs[0]/2 {
			t.Errorf("allocation grows with the chain: %d bytes for 12, %d for 60", allocs[0], allocs[1])
		}
	})

	t.Run("header stream claims a huge segment", func(t *testing.T) {
		h := append(binary.AppendUvarint([]byte(magic+"S"), maxSegment), make([]byte, 1000)...)
		var err error
		alloc := allocated(func() { _, err = joinBytes(h, nil) })
		if err == nil {
			t.Fatal("joined")
		}
		if alloc > maxSegment/2 {
			t.Errorf("allocated %d bytes", alloc)
		}
	})
}

// JoinToUnchecked writes what JoinTo writes and checks the same things,
// except the payloads' crc64s: a flipped content byte comes out as it is
// (the caller's digest over the output catches it).
func TestJoinToUnchecked(t *testing.T) {
	in := smallTar(t)
	_, headers, content := roundTrip(t, in)
	unchecked := func(headers, content []byte) ([]byte, error) {
		var out bytes.Buffer
		n, err := JoinToUnchecked(&out, bytes.NewReader(headers), bytes.NewReader(content))
		if n != int64(out.Len()) {
			t.Fatalf("JoinToUnchecked says %d bytes, wrote %d", n, out.Len())
		}
		return out.Bytes(), err
	}
	out, err := unchecked(headers, content)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("JoinToUnchecked: %v; output equals the tar: %t", err, bytes.Equal(out, in))
	}
	flipped := append([]byte{}, content...)
	flipped[20] ^= 0x40
	if _, err := joinBytes(headers, flipped); err == nil {
		t.Fatal("JoinTo accepted a corrupt payload")
	}
	out, err = unchecked(headers, flipped)
	if err != nil || len(out) != len(in) || bytes.Equal(out, in) {
		t.Fatalf("JoinToUnchecked of a corrupt payload: %v, %d bytes, equal to the tar: %t", err, len(out), bytes.Equal(out, in))
	}
	for name, c := range map[string][]byte{
		"short": content[:len(content)-1],
		"long":  append(append([]byte{}, content...), 'x'),
	} {
		if _, err := unchecked(headers, c); err == nil {
			t.Errorf("content %s: JoinToUnchecked succeeded", name)
		}
	}
	if _, err := unchecked(headers[:len(headers)-1], content); err == nil {
		t.Error("truncated header stream: JoinToUnchecked succeeded")
	}
}
