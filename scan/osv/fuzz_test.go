package osv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any input either fails with ErrInvalid or gives a record
// whose every affected entry can be evaluated without panicking.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"npm", "PyPI", "Go", "Debian"} {
		files, _ := filepath.Glob(filepath.Join(testdata, dir, "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b, "1.0.0")
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, ver string) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		if v.ID == "" {
			t.Fatal("record without id accepted")
		}
		for _, a := range v.Affected {
			for _, eco := range []string{a.Package.Ecosystem, "npm", "PyPI", "Debian", "Alpine", "Go"} {
				a.Evaluate(eco, ver)
			}
			a.GoImports()
		}
		v.DatabaseSeverity()
	})
}

func FuzzModifiedIDs(f *testing.F) {
	for _, p := range []string{"modified_id.csv", "npm/modified_id.csv"} {
		if b, err := os.ReadFile(filepath.Join(testdata, p)); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		ParseModifiedIDs(strings.NewReader(in), func(m ModifiedID) error {
			if m.ID == "" || strings.ContainsAny(m.ID, `/\`) {
				t.Fatalf("bad id %q accepted", m.ID)
			}
			return nil
		})
	})
}
