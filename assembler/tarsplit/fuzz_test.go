package tarsplit

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

// fuzzSeeds are small tars of every kind the package handles; the GNU tar
// sparse archives live in testdata/fuzz/FuzzSplitJoin.
func fuzzSeeds(t testing.TB) [][]byte {
	long := strings.Repeat("dir/", 40) + "name"
	pax := makeTar(t, []member{
		{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g", PAXRecords: map[string]string{"comment": "c"}, Format: tar.FormatPAX}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: long, Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}}, body: []byte("x")},
	}, false)
	gnu := makeTar(t, []member{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: long, Format: tar.FormatGNU}, body: []byte("y")},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "s", Linkname: long, Format: tar.FormatGNU}},
	}, false)
	small := smallTar(t)
	return [][]byte{
		nil,
		make([]byte, 1024),
		small,
		pax,
		gnu,
		append(append([]byte{}, small...), "garbage"...),
		small[:len(small)-1024],
		small[:700],
		[]byte("not a tar at all"),
	}
}

// FuzzSplitJoin: whatever Split accepts joins back to the same bytes, and
// whatever it refuses gives a FormatError, never a panic.
func FuzzSplitJoin(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// A small hole limit: walking sparse holes is slow under the
		// fuzzer's instrumentation, and the limit's size does not matter.
		var h, c bytes.Buffer
		st, err := split(bytes.NewReader(in), &h, &c, func(s *splitter) { s.maxHoles = 1 << 20 })
		headers, content := h.Bytes(), c.Bytes()
		if err != nil {
			wantFormatError(t, err)
			return
		}
		if st.TarBytes != int64(len(in)) || st.HeaderBytes != int64(len(headers)) || st.ContentBytes != int64(len(content)) {
			t.Fatalf("stats %+v for %d tar, %d header, %d content bytes", st, len(in), len(headers), len(content))
		}
		out, err := joinBytes(headers, content)
		if err != nil {
			t.Fatalf("JoinTo: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("joined %d bytes differing from the %d input bytes", len(out), len(in))
		}
		if err := Verify(bytes.NewReader(headers), bytes.NewReader(content), st); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

// FuzzJoin: any header and content streams either join or give an error,
// never a panic; what joins is as long as JoinTo says.
func FuzzJoin(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		if _, h, c, err := splitBytes(s); err == nil {
			f.Add(h, c)
		}
	}
	f.Fuzz(func(t *testing.T, headers, content []byte) {
		var out bytes.Buffer
		n, err := JoinTo(&out, bytes.NewReader(headers), bytes.NewReader(content))
		if n != int64(out.Len()) {
			t.Fatalf("JoinTo says %d bytes, wrote %d", n, out.Len())
		}
		if err == nil && n > int64(len(headers)+len(content)) {
			t.Fatalf("joined %d bytes from %d header and %d content bytes", n, len(headers), len(content))
		}
	})
}
