package fsutil

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// afterPowerLoss is fsys as a power loss now would leave it: only what was
// fsynced.
func afterPowerLoss(fsys *vfs.MemFS) *vfs.MemFS { return fsys.CrashClone(vfs.CrashCloneCfg{}) }

func TestMkdirAllSurvivesPowerLoss(t *testing.T) {
	mem := vfs.NewCrashableMem()
	// /a exists, durably: MkdirAll makes what it creates durable from there.
	if err := mem.MkdirAll("/a", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(mem, "/"); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(mem, "/a/b/c/d", 0o750); err != nil {
		t.Fatal(err)
	}
	crashed := afterPowerLoss(mem)
	for _, d := range []string{"/a/b", "/a/b/c", "/a/b/c/d"} {
		if st, err := crashed.Stat(d); err != nil || !st.IsDir() {
			t.Fatalf("%s after a power loss: %v", d, err)
		}
	}
	// An existing directory is no error.
	if err := MkdirAll(mem, "/a/b", 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	mem := vfs.NewCrashableMem()
	if err := MkdirAll(mem, "/d", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"first", "second, longer"} {
		if err := WriteFileAtomic(mem, "/d/f.json", []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, err := ReadFile(afterPowerLoss(mem), "/d/f.json")
		if err != nil || string(b) != content {
			t.Fatalf("after a power loss: %q, %v; want %q", b, err, content)
		}
	}
	names, err := mem.List("/d")
	if err != nil || len(names) != 1 {
		t.Fatalf("directory holds %v (%v), want the file alone", names, err)
	}
}

func TestRemoveDurably(t *testing.T) {
	mem := vfs.NewCrashableMem()
	if err := WriteFileAtomic(mem, "/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveDurably(mem, "/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := afterPowerLoss(mem).Stat("/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removed file after a power loss: %v", err)
	}
	if err := RemoveDurably(mem, "/f"); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
}

func TestCreateTempAndTruncate(t *testing.T) {
	dir := t.TempDir()
	f1, p1, err := CreateTemp(vfs.Default, dir, ".x-")
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	f2, p2, err := CreateTemp(vfs.Default, dir, ".x-")
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if p1 == p2 || filepath.Dir(p1) != dir || filepath.Base(p1)[:3] != ".x-" {
		t.Fatalf("temp files %s and %s", p1, p2)
	}
	if _, err := f1.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	// The OS's files can be cut; in-memory ones cannot, which is no error.
	if ok, err := Truncate(f1, 4); !ok || err != nil {
		t.Fatalf("Truncate on the OS: %t, %v", ok, err)
	}
	if b, _ := os.ReadFile(p1); !bytes.Equal(b, []byte("0123")) {
		t.Fatalf("after Truncate: %q", b)
	}
	mf, err := vfs.NewMem().Create("/m", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Truncate(mf, 0); ok || err != nil {
		t.Fatalf("Truncate in memory: %t, %v", ok, err)
	}
}
