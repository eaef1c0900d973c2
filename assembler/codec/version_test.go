package codec

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestModuleVersions pins the klauspost modules of the main module: their
// versions decide which encoder output classes chunkyard reproduces. A
// dependency that requires a newer klauspost/compress raises it through
// minimal version selection and breaks every recipe found before: keep
// such dependencies out of this module (a nested module, or a helper
// program).
func TestModuleVersions(t *testing.T) {
	want := map[string]string{compressPath: compressVersion, pgzipPath: pgzipVersion}
	if compressVersion != "v1.18.0" {
		t.Errorf("compressVersion = %s: the main module's class is v1.18.0", compressVersion)
	}

	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for line := range strings.Lines(string(gomod)) {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && want[f[0]] != "" {
			got[f[0]] = f[1]
		}
		if len(f) >= 1 && f[0] == "replace" && strings.Contains(line, "klauspost") {
			t.Errorf("go.mod replaces a klauspost module: %s", line)
		}
	}
	for path, v := range want {
		if got[path] != v {
			t.Errorf("go.mod requires %s %q, want %s", path, got[path], v)
		}
	}

	// The module graph's selection, tests of every package included.
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the module graph")
	}
	out, err := exec.Command(gobin, "list", "-m", compressPath, pgzipPath).Output()
	if err != nil {
		t.Skipf("go list -m: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || want[f[0]] != f[1] {
			t.Errorf("go list -m: %q, want versions %v", line, want)
		}
	}
}
