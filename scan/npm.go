package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// npmAnalyzer reads installed npm packages: node_modules/NAME/package.json
// and node_modules/@SCOPE/NAME/package.json, at any depth.
type npmAnalyzer struct{}

func (npmAnalyzer) match(f File) bool {
	parts := strings.Split(f.Path, "/")
	n := len(parts)
	if n < 3 || parts[n-1] != "package.json" {
		return false
	}
	if parts[n-3] == "node_modules" {
		return !strings.HasPrefix(parts[n-2], "@") && !strings.HasPrefix(parts[n-2], ".")
	}
	return n >= 4 && strings.HasPrefix(parts[n-3], "@") && parts[n-4] == "node_modules"
}

const maxPackageJSON = 8 << 20

var (
	npmNameRE    = regexp.MustCompile(`^(?:@[A-Za-z0-9][A-Za-z0-9._~-]*/)?[A-Za-z0-9._~-][A-Za-z0-9._~-]*$`)
	npmVersionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)
)

func (npmAnalyzer) read(f File, c Content, r *result) error {
	if c.Size() > maxPackageJSON {
		return fmt.Errorf("package.json of %d bytes, more than %d", c.Size(), maxPackageJSON)
	}
	var pj struct {
		Name    json.RawMessage `json:"name"`
		Version json.RawMessage `json:"version"`
	}
	if err := json.NewDecoder(io.NewSectionReader(c, 0, c.Size())).Decode(&pj); err != nil {
		return fmt.Errorf("package.json: %w", err)
	}
	var name, ver string
	if json.Unmarshal(pj.Name, &name) != nil || json.Unmarshal(pj.Version, &ver) != nil || name == "" || ver == "" {
		return nil // not a published package (a fixture, a private stub): nothing to match
	}
	if !npmNameRE.MatchString(name) || !npmVersionRE.MatchString(ver) {
		return fmt.Errorf("package.json: bad name %q or version %q", clip(name), clip(ver))
	}
	r.add(Package{Name: name, Version: strings.TrimPrefix(ver, "v"), Ecosystem: EcosystemNPM, Manager: "npm", Path: f.Path})
	return nil
}

// npmLockAnalyzer reads package-lock.json (lockfileVersion 1, 2 and 3)
// outside node_modules: the packages an application locks, whether or not
// node_modules was installed in the image. A locked package that is also
// installed is reported once, from its package.json (see Union).
type npmLockAnalyzer struct{}

func (npmLockAnalyzer) match(f File) bool {
	return path.Base(f.Path) == "package-lock.json" && !strings.Contains(f.Path, "node_modules/")
}

func (npmLockAnalyzer) read(f File, c Content, r *result) error {
	dir := path.Dir(f.Path)
	dec := json.NewDecoder(io.NewSectionReader(c, 0, c.Size()))
	if err := expectDelim(dec, '{'); err != nil {
		return fmt.Errorf("package-lock.json: %w", err)
	}
	var fromPackages, fromDeps []Package
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return fmt.Errorf("package-lock.json: %w", err)
		}
		switch key {
		case "packages":
			fromPackages, err = lockPackages(dec, dir, f.Path)
		case "dependencies":
			fromDeps, err = lockDependencies(dec, dir, f.Path)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return fmt.Errorf("package-lock.json: %s: %w", key, err)
		}
	}
	// Version 2 files carry both; "packages" is the complete one.
	pkgs := fromPackages
	if len(pkgs) == 0 {
		pkgs = fromDeps
	}
	for _, p := range pkgs {
		r.add(p)
	}
	return nil
}

// lockPackages reads the "packages" object of lockfileVersion 2 and 3,
// keyed by install path, one value at a time.
func lockPackages(dec *json.Decoder, dir, file string) ([]Package, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var out []Package
	for dec.More() {
		key, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		var v struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Link    bool   `json:"link"`
		}
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
		i := strings.LastIndex(key, "node_modules/")
		if i < 0 || v.Link || !npmVersionRE.MatchString(v.Version) {
			continue // the root, a workspace, a link, a git or file dependency
		}
		name := key[i+len("node_modules/"):]
		if v.Name != "" {
			name = v.Name // an alias: installed under another name
		}
		if !npmNameRE.MatchString(name) {
			continue
		}
		out = append(out, Package{Name: name, Version: strings.TrimPrefix(v.Version, "v"), Ecosystem: EcosystemNPM,
			Manager: "npm-lock", Path: file, InstallPath: path.Join(dir, key, "package.json")})
	}
	return out, expectDelim(dec, '}')
}

type lockDep struct {
	Version      string             `json:"version"`
	Dependencies map[string]lockDep `json:"dependencies"`
}

// lockDependencies reads lockfileVersion 1's nested "dependencies",
// one top-level dependency (with its subtree) at a time.
func lockDependencies(dec *json.Decoder, dir, file string) ([]Package, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var out []Package
	var walk func(name string, d lockDep, at string, depth int)
	walk = func(name string, d lockDep, at string, depth int) {
		if depth > 64 {
			return
		}
		at = path.Join(at, "node_modules", name)
		ver := d.Version
		if real, aliased, ok := strings.Cut(strings.TrimPrefix(ver, "npm:"), "@"); ok && strings.HasPrefix(ver, "npm:") {
			name, ver = real, aliased
			if strings.HasPrefix(d.Version, "npm:@") { // npm:@scope/name@1.2.3
				s := strings.TrimPrefix(d.Version, "npm:")
				j := strings.LastIndex(s, "@")
				name, ver = s[:j], s[j+1:]
			}
		}
		if npmVersionRE.MatchString(ver) && npmNameRE.MatchString(name) {
			out = append(out, Package{Name: name, Version: strings.TrimPrefix(ver, "v"), Ecosystem: EcosystemNPM,
				Manager: "npm-lock", Path: file, InstallPath: path.Join(at, "package.json")})
		}
		for child, cd := range d.Dependencies {
			walk(child, cd, at, depth+1)
		}
	}
	for dec.More() {
		name, err := stringToken(dec)
		if err != nil {
			return nil, err
		}
		var d lockDep
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		walk(name, d, dir, 0)
	}
	return out, expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %v", t, want)
	}
	return nil
}

func stringToken(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := t.(string)
	if !ok {
		return "", errors.New("object key is not a string")
	}
	return s, nil
}
