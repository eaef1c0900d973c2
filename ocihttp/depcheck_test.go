package ocihttp_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/chunkyard/chunkyard/"

// forbidden lists, for each package, module packages it must not import:
// the package boundaries (ocihttp speaks HTTP only and nothing but
// the CLI imports it; storage never knows about names or HTTP).
var forbidden = map[string][]string{
	"chunkstore": {"refgraph", "registry", "ocihttp", "assembler"},
	"refgraph":   {"registry", "ocihttp", "assembler"},
	"assembler":  {"registry", "ocihttp"},
	"registry":   {"ocihttp", "gc"},
	"gc":         {"ocihttp", "registry", "assembler"},
	"scan":       {"refgraph", "registry", "ocihttp", "gc"},
	"upstream":   {"refgraph", "chunkstore", "assembler", "ocihttp", "gc"},
}

func TestPackageBoundaries(t *testing.T) {
	root, _ := filepath.Abs("..")
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			dep, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			if dep == "ocihttp" && pkg != "cmd/chunkyard" {
				t.Errorf("%s imports ocihttp: only cmd/chunkyard may", path)
			}
			top := strings.SplitN(pkg, "/", 2)[0]
			for _, bad := range forbidden[top] {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s (package %s) imports %s", path, pkg, dep)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
