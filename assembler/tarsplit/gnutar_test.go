package tarsplit

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// gnuTar runs GNU tar in dir with args and returns the archive it wrote.
func gnuTar(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar binary")
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	cmd := exec.Command(bin, append(append([]string{"-C", dir, "-cf", out}, args...), ".")...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeTree fills dir with a small rootfs-like tree: directories, files of
// many sizes, an empty file, symlinks, a hard link, a fifo, long and
// non-ASCII names.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	long := filepath.Join(strings.Repeat("a-rather-long-directory-name/", 6), strings.Repeat("n", 120))
	files := map[string][]byte{
		"etc/hostname":        []byte("box\n"),
		"etc/empty":           nil,
		"usr/bin/tool":        randBytes(10, 200_000),
		"usr/lib/exact.so":    randBytes(11, 4096),
		"usr/share/dóc/ñame":  []byte("non-ascii\n"),
		long:                  []byte("deep\n"),
		"var/lib/data/blocks": randBytes(12, 1<<20+1),
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("hostname", filepath.Join(dir, "etc/link")))
	must(os.Symlink("/"+long, filepath.Join(dir, "longlink")))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-hardlink")))
	must(os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o700))
	must(syscall.Mkfifo(filepath.Join(dir, "run.fifo"), 0o600))
}

// writeSparse writes a file with holes: data, a 1 MiB hole, data, a hole
// up to its end. It returns the file's bytes.
func writeSparse(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, b := randBytes(13, 8192), randBytes(14, 4096+100)
	if _, err := f.WriteAt(a, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 1<<20+8192); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 20); err != nil {
		t.Fatal(err)
	}
	whole := make([]byte, 3<<20)
	copy(whole, a)
	copy(whole[1<<20+8192:], b)
	return whole
}

func TestGNUTar(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir)
	for _, args := range [][]string{
		{"--format=gnu"},
		{"--format=oldgnu"},
		{"--format=posix"},
		{"--format=posix", "--blocking-factor=1"},
		{"--format=gnu", "--blocking-factor=64"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			in := gnuTar(t, dir, args...)
			st, _, _ := roundTrip(t, in)
			if st.Files < 15 {
				t.Errorf("Files = %d, want at least 15", st.Files)
			}
		})
	}
}

func TestGNUTarSparse(t *testing.T) {
	dir := t.TempDir()
	whole := writeSparse(t, filepath.Join(dir, "sparse"))
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("plain file after the sparse one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--format=gnu", "--sparse"},
		{"--format=oldgnu", "--sparse"},
		{"--format=posix", "--sparse", "--sparse-version=0.0"},
		{"--format=posix", "--sparse", "--sparse-version=0.1"},
		{"--format=posix", "--sparse", "--sparse-version=1.0"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			in := gnuTar(t, dir, args...)
			if len(in) >= len(whole) {
				t.Skipf("tar stored the sparse file whole (%d bytes): no holes on this file system?", len(in))
			}
			st, _, content := roundTrip(t, in)
			// The content stream holds the archived data fragments, not the
			// expanded file.
			if st.ContentBytes >= int64(len(whole)) || !bytes.Contains(content, whole[:8192]) {
				t.Errorf("content stream of %d bytes: holes stored, or data missing", st.ContentBytes)
			}
		})
	}
}

// A sparse file whose holes exceed the limit is refused, not expanded.
// (At the real limit, maxSparseHoles, walking the holes takes ~0.2 s, and
// minutes under the race detector: the test uses a smaller one.)
func TestGNUTarSparseHoleLimit(t *testing.T) {
	const limit = 64 << 20
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "hole"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end\n"), limit+1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	in := gnuTar(t, dir, "--format=posix", "--sparse")
	if len(in) > 1<<20 {
		t.Skipf("tar stored the sparse file whole (%d bytes)", len(in))
	}
	withLimit := func(n int64) func(*splitter) { return func(s *splitter) { s.maxHoles = n } }
	if _, err := split(bytes.NewReader(in), io.Discard, io.Discard, withLimit(2*limit)); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
	_, err = split(bytes.NewReader(in), io.Discard, io.Discard, withLimit(limit))
	wantFormatError(t, err)
	if !strings.Contains(err.Error(), "sparse holes exceed") {
		t.Fatalf("got %v, want the hole limit", err)
	}
}
