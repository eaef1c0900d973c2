package scan

import (
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/chunkyard/chunkyard/scan/osv"
)

// Finding is one advisory affecting one package of an image.
type Finding struct {
	// ID is the advisory's id exactly as in the feed; Aliases its aliases.
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	Summary string   `json:"summary,omitempty"`
	// Package, Version and Ecosystem are the installed package's (the
	// ecosystem with the OS release: "Debian:12").
	Package   string `json:"package"`
	Version   string `json:"version"`
	Ecosystem string `json:"ecosystem"`
	// Source is the source package the advisory names, when it is not
	// Package (Debian advisories name source packages).
	Source string `json:"source,omitempty"`
	// Fixed is the first version that fixes it, if the advisory has one;
	// LastAffected the last affected version, if it says so instead.
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	// Severity is the advisory's (the affected entry's, else the
	// record's); SeverityLevel its database's own word ("HIGH").
	Severity      []osv.Severity `json:"severity,omitempty"`
	SeverityLevel string         `json:"severity_level,omitempty"`
	// Layer introduced the package, from the file at Path; OwnedBy is the
	// OS package that installed that file, if any.
	Layer   string `json:"layer"`
	Path    string `json:"path"`
	OwnedBy string `json:"owned_by,omitempty"`
}

// Match matches an image's packages against the advisories through the
// index from (ecosystem, name) to advisory ids: each package reads only
// the advisories naming it. No layer is read. Notes say what could not be
// evaluated (a range in a version the ordering does not understand).
func (db *DB) Match(ctx context.Context, img *Image) ([]Finding, []Note, error) {
	return db.NewMatcher().Match(ctx, img)
}

// Matcher matches images against the advisories, remembering what it
// read (index entries, advisories, verdicts per package version) across
// images: matching many images that share packages after a feed update
// reads and evaluates each (package, version) once. A Matcher is for one
// goroutine and one state of the feed; it holds at most maxMemo verdicts.
type Matcher struct {
	db    *DB
	cache map[string]*advisory
	ids   map[string]map[string][]string
	memo  map[string]osv.Verdict
}

const maxMemo = 1 << 20

// NewMatcher returns a Matcher over db's advisories.
func (db *DB) NewMatcher() *Matcher {
	return &Matcher{db: db, cache: map[string]*advisory{}, ids: map[string]map[string][]string{}, memo: map[string]osv.Verdict{}}
}

// Match is DB.Match with the Matcher's memory.
func (mt *Matcher) Match(ctx context.Context, img *Image) ([]Finding, []Note, error) {
	m := &matcher{Matcher: mt, ctx: ctx}
	// Go modules per binary, for the package-vs-module rule.
	modules := map[string][]string{}
	for _, p := range img.Packages {
		if p.Ecosystem == EcosystemGo {
			modules[p.Path] = append(modules[p.Path], p.Name)
		}
	}
	var out []Finding
	for i := range img.Packages {
		p := &img.Packages[i]
		fs, err := m.matchPackage(p, modules[p.Path])
		if err != nil {
			return nil, nil, err
		}
		out = append(out, fs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Path < b.Path
	})
	return out, m.notes, nil
}

// matcher is one Match call.
type matcher struct {
	*Matcher
	ctx   context.Context
	notes []Note
	noted map[string]bool
}

// evaluate is af.Evaluate, memoised by (advisory, entry, ordering,
// version).
func (m *matcher) evaluate(id string, i int, af *osv.Affected, ordering, ver string) osv.Verdict {
	k := id + "\x00" + strconv.Itoa(i) + "\x00" + ordering + "\x00" + ver
	if vd, ok := m.memo[k]; ok {
		return vd
	}
	if len(m.memo) >= maxMemo {
		clear(m.memo)
	}
	vd := af.Evaluate(ordering, ver)
	m.memo[k] = vd
	return vd
}

func (m *matcher) get(id string) (*advisory, error) {
	if a, ok := m.cache[id]; ok {
		return a, nil
	}
	a, err := m.db.advisory(id)
	if err != nil {
		return nil, err
	}
	if len(m.cache) >= maxMemo {
		clear(m.cache)
	}
	m.cache[id] = a
	return a, nil
}

func (m *matcher) note(p *Package, id, reason string) {
	if m.noted == nil {
		m.noted = map[string]bool{}
	}
	k := id + "\x00" + p.Name + "\x00" + reason
	if m.noted[k] {
		return
	}
	m.noted[k] = true
	m.notes = append(m.notes, Note{Path: p.Path, Layer: p.Layer,
		Message: "advisory " + id + " for " + p.Name + " not fully evaluated: " + reason})
}

// ids returns the advisory ids indexed under (eco, name), and for Go the
// ids of records naming a package path inside module name.
func (m *matcher) lookup(eco, name string, goModule bool) (map[string][]string, error) {
	key := eco + "\x00" + name
	if goModule {
		key += "\x00go"
	}
	if ids, ok := m.ids[key]; ok {
		return ids, nil
	}
	if len(m.ids) >= maxMemo {
		clear(m.ids)
	}
	out := map[string][]string{} // id -> names it was indexed under
	add := func(prefix []byte, exact bool) error {
		return m.db.kv.Scan(m.ctx, prefix, func(k, _ []byte) error {
			rest := string(k[len(keyIndex+eco)+1:])
			n, id, ok := strings.Cut(rest, "\x00")
			if !ok {
				return nil
			}
			if exact && n != name {
				return nil
			}
			out[id] = append(out[id], n)
			return nil
		})
	}
	if err := add([]byte(keyIndex+eco+"\x00"+name+"\x00"), true); err != nil {
		return nil, err
	}
	if goModule {
		if err := add([]byte(keyIndex+eco+"\x00"+name+"/"), false); err != nil {
			return nil, err
		}
	}
	m.ids[key] = out
	return out, nil
}

var majorSuffixRE = regexp.MustCompile(`^v[2-9][0-9]*$|^v[1-9][0-9]+$`)

// goPackageIn reports whether a Go record's package name pkg belongs to
// module mod of a binary whose modules are all: pkg is mod or below it,
// mod is the longest module of the binary containing pkg, and the path
// below mod does not start with a major version suffix (that would be
// another module, mod/v2).
func goPackageIn(pkg, mod string, all []string) bool {
	if pkg == mod {
		return true
	}
	if !strings.HasPrefix(pkg, mod+"/") {
		return false
	}
	first, _, _ := strings.Cut(pkg[len(mod)+1:], "/")
	if majorSuffixRE.MatchString(first) {
		return false
	}
	for _, o := range all {
		if len(o) > len(mod) && (pkg == o || strings.HasPrefix(pkg, o+"/")) {
			return false
		}
	}
	return true
}

// ecosystemMatches says whether a record's ecosystem ("Debian:12",
// "Ubuntu:22.04:LTS", "Alpine:v3.20", "npm") covers a package of base
// ecosystem eco and OS release rel. A record without a release covers
// every release; a record with one covers only that release.
func ecosystemMatches(recEco, eco, rel string) bool {
	base, recRel, hasRel := strings.Cut(recEco, ":")
	if base != eco {
		return false
	}
	if !hasRel {
		return true
	}
	return rel != "" && (recRel == rel || strings.HasPrefix(recRel, rel+":"))
}

func (m *matcher) matchPackage(p *Package, binaryModules []string) ([]Finding, error) {
	name, ver := lookupName(p), p.Version
	if (p.Manager == "dpkg" || p.Manager == "apk") && p.SourceVersion != "" {
		ver = p.SourceVersion
	}
	ordering := p.Ecosystem
	if p.Release != "" {
		ordering += ":" + p.Release
	}
	isGo := p.Ecosystem == EcosystemGo && p.Name != "stdlib" && p.Name != "toolchain"
	ids, err := m.lookup(p.Ecosystem, name, isGo)
	if err != nil {
		return nil, err
	}
	var out []Finding
	idList := make([]string, 0, len(ids))
	for id := range ids {
		idList = append(idList, id)
	}
	sort.Strings(idList)
	for _, id := range idList {
		a, err := m.get(id)
		if err != nil {
			return nil, err
		}
		if a == nil || a.Withdrawn {
			continue
		}
		for i := range a.Affected {
			af := &a.Affected[i]
			if !ecosystemMatches(af.Package.Ecosystem, p.Ecosystem, p.Release) {
				continue
			}
			k := advisoryKey(af.Package)
			switch {
			case k.Name == name:
			case isGo && goPackageIn(k.Name, p.Name, binaryModules):
			default:
				continue
			}
			vd := m.evaluate(id, i, af, ordering, ver)
			if vd.Skipped > 0 && !vd.Affected {
				m.note(p, id, vd.Reason)
			}
			if !vd.Affected {
				continue
			}
			f := Finding{ID: a.ID, Aliases: a.Aliases, Summary: a.Summary, Package: p.Name, Version: p.Version,
				Ecosystem: ordering, Fixed: vd.Fixed, LastAffected: vd.LastAffected, Severity: af.Severity,
				SeverityLevel: a.DBSeverity, Layer: p.Layer, Path: p.Path, OwnedBy: p.OwnedBy}
			if len(f.Severity) == 0 {
				f.Severity = a.Severity
			}
			if name != p.Name && (p.Manager == "dpkg" || p.Manager == "apk") {
				f.Source = name
			}
			out = append(out, f)
			break // one finding per advisory and package
		}
	}
	return out, nil
}
