package deflate

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// goroot is the toolchain's tree: go test runs with the go command that
// built the test, and Go's own files are the same wherever that toolchain
// is installed.
var goroot = sync.OnceValues(func() (string, error) {
	if r := os.Getenv("GOROOT"); r != "" {
		return r, nil
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	return strings.TrimSpace(string(out)), err
})

// goTar makes a layer-like tar of files under $GOROOT/rel (sorted, fixed
// times and owners, as a reproducible build would), stopping once it holds
// limit bytes of file content. keep selects files.
func goTar(t testing.TB, rel string, limit int64, keep func(path string, size int64) bool) []byte {
	t.Helper()
	root, err := goroot()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	total := int64(0)
	errStop := fs.SkipAll
	err = filepath.WalkDir(filepath.Join(root, rel), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		if info.Mode().IsRegular() && !keep(path, info.Size()) {
			return nil
		}
		name, _ := filepath.Rel(root, path)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(name)
		hdr.ModTime = time.Unix(1700000000, 0)
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if _, err := tw.Write(data); err != nil {
				return err
			}
			total += int64(len(data))
			if total >= limit {
				return errStop
			}
		}
		return nil
	})
	if err != nil && err != errStop {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func all(string, int64) bool { return true }

// tb lets the cached builders fail loudly outside a test.
type tb struct{ testing.TB }

func (tb) Helper()                   {}
func (tb) Fatal(args ...any)         { panic(args) }
func (tb) Fatalf(f string, a ...any) { panic(f) }
