package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// entry is one member of a test tar.
type entry struct {
	hdr  tar.Header
	body []byte
}

// makeTar writes entries as a tar, sizes filled in for regular files.
func makeTar(t testing.TB, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarDir makes a layer tar of a directory tree (as a container build
// would: directories, files with their modes, symbolic links), entries
// in sorted order.
func tarDir(t testing.TB, dir string) []byte {
	t.Helper()
	var es []entry
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: rel, Linkname: target, Mode: 0o777}})
		case fi.IsDir():
			es = append(es, entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755}})
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			es = append(es, entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(fi.Mode().Perm())}, body: b})
		}
	}
	return makeTar(t, es)
}

// splitLayer splits a tar as the converter stores it and returns the
// split view of it.
func splitLayer(t testing.TB, tarBytes []byte) *SplitLayer {
	t.Helper()
	var h, c bytes.Buffer
	if _, err := tarsplit.Split(bytes.NewReader(tarBytes), &h, &c); err != nil {
		t.Fatal(err)
	}
	return &SplitLayer{Headers: bytes.NewReader(h.Bytes()), Content: bytes.NewReader(c.Bytes())}
}

// analyzeBoth analyzes a tar through both views and checks that they
// agree on everything but the read statistics; it returns the split
// view's inventory.
func analyzeBoth(t testing.TB, tarBytes []byte, opts Options) *Inventory {
	t.Helper()
	ctx := context.Background()
	a, err := Analyze(ctx, splitLayer(t, tarBytes), opts)
	if err != nil {
		t.Fatalf("split view: %v", err)
	}
	b, err := Analyze(ctx, &TarLayer{R: bytes.NewReader(tarBytes), TempDir: t.TempDir()}, opts)
	if err != nil {
		t.Fatalf("tar view: %v", err)
	}
	ja, jb := *a, *b
	ja.Stats, jb.Stats = ReadStats{}, ReadStats{}
	if sa, sb := mustJSON(t, ja), mustJSON(t, jb); sa != sb {
		t.Fatalf("split and tar views disagree:\nsplit %s\ntar   %s", sa, sb)
	}
	if a.Stats.Uncompressed != int64(len(tarBytes)) || b.Stats.Uncompressed != int64(len(tarBytes)) {
		t.Errorf("uncompressed size: split %d, tar %d, want %d", a.Stats.Uncompressed, b.Stats.Uncompressed, len(tarBytes))
	}
	return a
}

// memDB is a DB over an in-memory Pebble.
func memDB(t testing.TB) *DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return NewDB(NewPebbleKV(db, []byte("scan/")))
}

// requireTools says whether a test must fail, not skip, when a tool or
// download it needs is missing (the test command sets it).
func requireTools() bool { return os.Getenv("CHUNKYARD_REQUIRE_TOOLS") == "1" }

// goBinary builds a small Go program against old golang.org/x/text and
// golang.org/x/net and a module with a withdrawn advisory, with modules
// from the Go module proxy, and returns its bytes.
func goBinary(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": `module example.com/scanfixture

go 1.21

require (
	github.com/gorilla/sessions v1.2.1
	golang.org/x/net v0.0.0-20210226172049-e18ecbb05110
	golang.org/x/text v0.3.7
)
`,
		"main.go": `package main

import (
	"fmt"
	"strings"

	"github.com/gorilla/sessions"
	"golang.org/x/net/html"
	"golang.org/x/text/language"
)

func main() {
	tag, _ := language.Parse("en-US")
	doc, _ := html.Parse(strings.NewReader("<p>x</p>"))
	fmt.Println(tag, doc != nil, sessions.NewCookieStore([]byte("k")) != nil)
}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOWORK=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		if requireTools() {
			t.Fatalf("building the Go fixture (modules from the Go module proxy): %v\n%s", err, msg)
		}
		t.Skipf("building the Go fixture failed (no Go module proxy?); CHUNKYARD_REQUIRE_TOOLS=1 makes this fail: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// quietLogger keeps Pebble's informational lines out of test output.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func tarReg(name string, mode int64) tar.Header {
	return tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}
}

var smallGo struct {
	once sync.Once
	bin  []byte
	err  error
}

// smallGoBinary builds a standard-library-only Go program (static, no
// module downloads) once per test process and returns its bytes.
func smallGoBinary(t testing.TB) []byte {
	t.Helper()
	smallGo.once.Do(func() {
		dir, err := os.MkdirTemp("", "scan-smallgo-")
		if err != nil {
			smallGo.err = err
			return
		}
		defer os.RemoveAll(dir)
		src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
			smallGo.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.21\n"), 0o644); err != nil {
			smallGo.err = err
			return
		}
		out := filepath.Join(dir, "hello")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
		if msg, err := cmd.CombinedOutput(); err != nil {
			smallGo.err = fmt.Errorf("go build: %v\n%s", err, msg)
			return
		}
		smallGo.bin, smallGo.err = os.ReadFile(out)
	})
	if smallGo.err != nil {
		t.Fatal(smallGo.err)
	}
	return smallGo.bin
}
