package tarsplit

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// checkEntries lists the split of in and compares every entry with what
// archive/tar reads from the original tar: same headers, in order, and
// each regular file's payload found at its offset in the content stream.
func checkEntries(t *testing.T, in []byte) int {
	t.Helper()
	var hbuf, cbuf bytes.Buffer
	st, err := Split(bytes.NewReader(in), &hbuf, &cbuf)
	if err != nil {
		t.Fatal(err)
	}
	content := cbuf.Bytes()
	tr := tar.NewReader(bytes.NewReader(in))
	var n int
	var sum int64
	totals, err := Entries(bytes.NewReader(hbuf.Bytes()), func(e Entry) error {
		want, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %d %q: original tar: %v", n, e.Header.Name, err)
		}
		n++
		if e.Header.Name != want.Name || e.Header.Typeflag != want.Typeflag || e.Header.Size != want.Size ||
			e.Header.Linkname != want.Linkname || e.Header.Mode != want.Mode {
			t.Errorf("entry %d: got %q %c size %d link %q mode %o, want %q %c size %d link %q mode %o", n,
				e.Header.Name, e.Header.Typeflag, e.Header.Size, e.Header.Linkname, e.Header.Mode,
				want.Name, want.Typeflag, want.Size, want.Linkname, want.Mode)
		}
		if e.Offset != sum {
			t.Errorf("entry %q: offset %d, want %d (sum of sizes before it)", e.Header.Name, e.Offset, sum)
		}
		sum += e.Size
		if e.Header.Typeflag == tar.TypeReg && !strings.Contains(e.Header.Name, "sparse") {
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if e.Size != int64(len(body)) || !bytes.Equal(content[e.Offset:e.Offset+e.Size], body) {
				t.Errorf("entry %q: content at %d+%d is not its payload (%d bytes)", e.Header.Name, e.Offset, e.Size, len(body))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("original tar has more entries after %d: %v", n, err)
	}
	if totals.TarBytes != st.TarBytes || totals.ContentBytes != st.ContentBytes || totals.Entries != int64(st.Files) || sum != st.ContentBytes {
		t.Errorf("totals %+v (sizes add to %d), split stats %+v", totals, sum, st)
	}
	return n
}

func TestEntriesGNUTar(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir)
	writeSparse(t, filepath.Join(dir, "sparse"))
	for _, args := range [][]string{
		{"--format=gnu"},
		{"--format=oldgnu"},
		{"--format=posix"},
		{"--format=gnu", "--sparse"},
		{"--format=posix", "--sparse", "--sparse-version=1.0"},
		{"--format=posix", "--sparse", "--sparse-version=0.1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if n := checkEntries(t, gnuTar(t, dir, args...)); n < 15 {
				t.Errorf("%d entries, want at least 15", n)
			}
		})
	}
}

func TestEntriesGoTar(t *testing.T) {
	long := strings.Repeat("d/", 80) + "file"
	ms := []member{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "etc/os-release", Mode: 0o644}, body: []byte("ID=debian\n")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "empty", Mode: 0o644}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: long, Mode: 0o644, PAXRecords: map[string]string{"user.x": "y"}}, body: randBytes(1, 70000)},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/lib/os-release", Linkname: "../../etc/os-release", Mode: 0o777}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hard", Linkname: "empty"}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/tool", Mode: 0o755}, body: randBytes(2, 513)},
	}
	if n := checkEntries(t, makeTar(t, ms, false)); n != len(ms) {
		t.Errorf("%d entries, want %d", n, len(ms))
	}
	// An archive without end-of-archive blocks lists the same.
	if n := checkEntries(t, makeTar(t, ms, true)); n != len(ms) {
		t.Errorf("open archive: %d entries, want %d", n, len(ms))
	}
	// So does an empty one.
	if n := checkEntries(t, nil); n != 0 {
		t.Errorf("empty archive: %d entries", n)
	}
}

func TestEntriesStopAndCorrupt(t *testing.T) {
	in := makeTar(t, []member{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "a", Mode: 0o644}, body: []byte("aaa")},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "b", Mode: 0o644}, body: []byte("bbb")},
	}, false)
	var hbuf bytes.Buffer
	if _, err := Split(bytes.NewReader(in), &hbuf, io.Discard); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	var seen int
	_, err := Entries(bytes.NewReader(hbuf.Bytes()), func(e Entry) error { seen++; return stop })
	if !errors.Is(err, stop) || seen != 1 {
		t.Errorf("callback error: got %v after %d entries", err, seen)
	}
	// Every truncation of the header stream is an error, never a short
	// listing that looks complete.
	h := hbuf.Bytes()
	for cut := 0; cut < len(h); cut++ {
		if _, err := Entries(bytes.NewReader(h[:cut]), func(Entry) error { return nil }); err == nil {
			t.Fatalf("header stream cut at %d of %d: no error", cut, len(h))
		}
	}
}
