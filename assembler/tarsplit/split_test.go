package tarsplit

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	reg := func(name string, body []byte) member {
		return member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: mtime}, body: body}
	}
	longName := strings.Repeat("long-directory-name/", 20) + "file.txt"
	basic := []member{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: mtime}},
		reg("etc/hostname", []byte("box\n")),
		reg("etc/empty", nil),
		reg("etc/block", bytes.Repeat([]byte{'x'}, 512)),
		reg("etc/blockplus", bytes.Repeat([]byte{'y'}, 513)),
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/link", Linkname: "hostname", ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "etc/hard", Linkname: "etc/hostname", ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Devmajor: 1, Devminor: 3, ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Devmajor: 8, ModTime: mtime}},
		reg(".wh.deleted", nil),
	}
	withFormat := func(f tar.Format, ms []member) []member {
		out := make([]member, len(ms))
		for i, m := range ms {
			m.hdr.Format = f
			out[i] = m
		}
		return out
	}
	pax := withFormat(tar.FormatPAX, []member{
		{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"comment": "made by a test"}}},
		reg(longName, []byte("deep\n")),
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "l", Linkname: longName, ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "caps", ModTime: mtime, AccessTime: mtime, ChangeTime: mtime,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.note": strings.Repeat("n", 3000)}}},
		reg("ünïcode-näme", []byte("utf8")),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bigid", Uid: 1 << 30, Gid: 1 << 30, Uname: strings.Repeat("u", 40), ModTime: mtime}},
	})
	gnu := withFormat(tar.FormatGNU, []member{
		reg(longName, []byte("gnu long name\n")),
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "gl", Linkname: longName, ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: longName + ".hard", Linkname: longName, ModTime: mtime}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "times", ModTime: mtime, AccessTime: mtime, ChangeTime: mtime}},
	})
	big := randBytes(1, 3<<20+17)

	tests := []struct {
		name    string
		in      []byte
		files   int
		content []byte // expected content stream, when set
	}{
		{name: "empty input", in: nil},
		{name: "end of archive only", in: make([]byte, 1024)},
		{name: "one zero block", in: make([]byte, 512)},
		{name: "ustar basics", in: makeTar(t, basic, false), files: len(basic),
			content: bytes.Join([][]byte{[]byte("box\n"), bytes.Repeat([]byte{'x'}, 512), bytes.Repeat([]byte{'y'}, 513)}, nil)},
		{name: "pax", in: makeTar(t, pax, false), files: len(pax), content: []byte("deep\nutf8")},
		{name: "gnu", in: makeTar(t, gnu, false), files: len(gnu), content: []byte("gnu long name\n")},
		{name: "large file", in: makeTar(t, []member{reg("big", big), reg("after", []byte("z"))}, false), files: 2,
			content: append(append([]byte{}, big...), 'z')},
		{name: "duplicate paths", in: makeTar(t, []member{reg("a", []byte("1")), reg("a", []byte("2")), reg("./a", []byte("3"))}, false), files: 3,
			content: []byte("123")},
		{name: "non-utf8 name", in: makeTar(t, []member{reg("bad-\xff\xfe-name", []byte("?"))}, false), files: 1},
		{name: "no end of archive", in: makeTar(t, basic, true), files: len(basic)},
		{name: "extra zero blocks", in: append(makeTar(t, basic, false), make([]byte, 10*512)...), files: len(basic)},
		{name: "garbage after end", in: append(makeTar(t, basic, false), []byte("trailing garbage, not a tar \x00\x01\x02")...), files: len(basic)},
		{name: "long trailer", in: append(makeTar(t, basic, false), randBytes(2, 5<<20+3)...), files: len(basic)},
		{name: "truncated in padding", in: makeTar(t, []member{reg("f", bytes.Repeat([]byte{'p'}, 100))}, true)[:512+300], files: 1,
			content: bytes.Repeat([]byte{'p'}, 100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _, content := roundTrip(t, tc.in)
			if st.Files != tc.files {
				t.Errorf("Files = %d, want %d", st.Files, tc.files)
			}
			if tc.content != nil && !bytes.Equal(content, tc.content) {
				t.Errorf("content stream = %q, want %q", trim(content), trim(tc.content))
			}
		})
	}
}

func trim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// The content stream is the payloads alone: rebuilding the same files
// with other mtimes, owners and modes changes only the header stream.
func TestContentIgnoresMetadata(t *testing.T) {
	files := []struct {
		name string
		body []byte
	}{{"bin/tool", randBytes(3, 70000)}, {"etc/conf", []byte("k=v\n")}, {"empty", nil}, {"lib/big.so", randBytes(4, 1<<20)}}
	build := func(mtime time.Time, uid int, format tar.Format) []byte {
		var ms []member
		for _, f := range files {
			ms = append(ms, member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o600 + int64(uid%2), Uid: uid, Gid: uid,
				Uname: "user" + string(rune('a'+uid%26)), ModTime: mtime, Format: format}, body: f.body})
		}
		return makeTar(t, ms, false)
	}
	a := build(time.Unix(1_600_000_000, 0), 0, tar.FormatUSTAR)
	b := build(time.Unix(1_700_000_000, 5e8), 1000, tar.FormatPAX)
	_, ha, ca := roundTrip(t, a)
	_, hb, cb := roundTrip(t, b)
	if bytes.Equal(a, b) || bytes.Equal(ha, hb) {
		t.Fatal("tars or header streams unexpectedly equal")
	}
	if !bytes.Equal(ca, cb) {
		t.Fatalf("content streams differ: %d and %d bytes", len(ca), len(cb))
	}
}

func TestNotTar(t *testing.T) {
	valid := makeTar(t, []member{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644}, body: randBytes(5, 5000)},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "g", Mode: 0o644}, body: []byte("g")},
	}, false)
	corrupt := append([]byte{}, valid...)
	corrupt[148] ^= 1 // header checksum
	tests := map[string][]byte{
		"text":               []byte(strings.Repeat("hello, this is not a tar archive\n", 40)),
		"random":             randBytes(6, 10000),
		"short":              []byte("abc"),
		"gzip magic":         append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, 600)...),
		"bad checksum":       corrupt,
		"zero then data":     append(make([]byte, 512), valid...),
		"truncated payload":  valid[:512+2000],
		"truncated header":   valid[:300],
		"truncated 2nd hdr":  valid[:512+5120+100],
		"header, no payload": valid[:512],
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, _, err := splitBytes(in)
			wantFormatError(t, err)
		})
	}
}
