package scan

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// vulndbVersion is a version of golang.org/x/vulndb, the Go vulnerability
// database as a Go module (its data/osv holds every record).
const vulndbVersion = "v0.0.0-20261105234957-e22db6528018"

// vulndbDir fetches golang.org/x/vulndb from the Go module proxy (into the
// module cache) and returns its data/osv directory.
func vulndbDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/vulndbfetch\n\ngo 1.21\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "golang.org/x/vulndb@"+vulndbVersion)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		if requireTools() {
			tb.Fatalf("go mod download golang.org/x/vulndb: %v", err)
		}
		tb.Skipf("go mod download golang.org/x/vulndb failed (no Go module proxy?); CHUNKYARD_REQUIRE_TOOLS=1 makes this fail: %v", err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		tb.Fatalf("go mod download output %q: %v", out, err)
	}
	return filepath.Join(m.Dir, "data", "osv")
}

// The whole Go vulnerability database imports without a bad record and
// matches as the Go team's own records say.
func TestImportVulnDB(t *testing.T) {
	if testing.Short() {
		t.Skip("imports thousands of records")
	}
	ctx := context.Background()
	dir := vulndbDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	db := memDB(t)
	st, err := db.Import(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bad != 0 || st.Added != len(files) || st.Added < 4000 || st.Withdrawn == 0 {
		t.Fatalf("import of %d files: %+v (bad: %v)", len(files), st, st.BadRecords)
	}
	img := &Image{Packages: []Package{
		{Name: "golang.org/x/text", Version: "0.3.7", Ecosystem: "Go", Manager: "go-binary", Path: "bin/app"},
		{Name: "stdlib", Version: "1.21.2", Ecosystem: "Go", Manager: "go-binary", Path: "bin/app"},
		{Name: "golang.org/x/text", Version: "0.3.8", Ecosystem: "Go", Manager: "go-binary", Path: "bin/fixed"},
	}}
	fs, notes, err := db.Match(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, f := range fs {
		has[f.ID+" "+f.Package+"@"+f.Version] = true
	}
	for _, want := range []string{"GO-2022-1059 golang.org/x/text@0.3.7", "GO-2023-2102 stdlib@1.21.2", "GO-2023-2185 stdlib@1.21.2"} {
		if !has[want] {
			t.Errorf("missing %s", want)
		}
	}
	if has["GO-2022-1059 golang.org/x/text@0.3.8"] || has["GO-2021-0113 golang.org/x/text@0.3.7"] {
		t.Errorf("fixed versions matched: %v", has)
	}
	if len(notes) != 0 {
		t.Errorf("notes: %v", notes)
	}
	t.Logf("%d records, %d withdrawn; %d findings for the test image", st.Added, st.Withdrawn, len(fs))
}
