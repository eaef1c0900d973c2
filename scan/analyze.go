package scan

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// DefaultMaxFileSize is the default Options.MaxFileSize.
const DefaultMaxFileSize = 256 << 20

// Options configure Analyze.
type Options struct {
	// MaxFileSize: a selected file larger than this is skipped with a note
	// (default DefaultMaxFileSize). Metadata files have smaller caps of
	// their own (see each analyzer).
	MaxFileSize int64
}

// analyzer reads one kind of package record.
type analyzer interface {
	// match says whether the analyzer reads f (by path, type and mode).
	match(f File) bool
	// read parses f's content into r. A *ReadError fails the analysis;
	// any other error becomes a note on f.
	read(f File, c Content, r *result) error
}

// result collects one layer's findings while the analyzers run.
type result struct {
	inv    Inventory
	osRels map[string]*OSRelease // by path
	// owners maps a path an OS package installed to that package (all
	// but directories, up to maxOwned paths).
	owners map[string]string
	// dpkgGo says, for each dpkg package of the layer's status, whether
	// it was built with Go (a golang-* package in Built-Using or
	// Static-Built-Using).
	dpkgGo map[string]bool
}

// maxOwned caps the paths of OS packages' file lists kept in memory.
const maxOwned = 1 << 20

// own records that an OS package installed p.
func (r *result) own(p, pkg string) {
	if len(r.owners) < maxOwned {
		r.owners[p] = pkg
	} else if len(r.owners) == maxOwned {
		r.owners[""] = ""
		r.note("", "more than %d files owned by OS packages: ownership not recorded for the rest", maxOwned)
	}
}

// notGoBinary reports whether the file at p belongs to a dpkg package of
// the layer that was not built with Go: its executables are not read as
// Go binaries. (On a split layer, reading the start of every executable
// would fetch most chunks of /usr/bin.)
func (r *result) notGoBinary(p string) bool {
	owner := r.owners[p]
	if owner == "" {
		return false
	}
	goPkg, known := r.dpkgGo[owner]
	return known && !goPkg
}

func (r *result) add(p Package) { r.inv.Packages = append(r.inv.Packages, p) }

func (r *result) note(p, format string, args ...any) {
	r.inv.Notes = append(r.inv.Notes, Note{Path: p, Message: fmt.Sprintf(format, args...)})
}

// analyzers returns the analyzers, in a fixed order.
func analyzers() []analyzer {
	return []analyzer{osReleaseAnalyzer{}, dpkgAnalyzer{}, dpkgListAnalyzer{}, apkAnalyzer{},
		pythonAnalyzer{}, npmAnalyzer{}, npmLockAnalyzer{}, goBinaryAnalyzer{}, rpmAnalyzer{}}
}

// Analyze walks a layer and returns its inventory. A problem with one
// file (too large, does not parse) is a note in the inventory; a broken
// tar stream is a note and Incomplete. Errors reading the layer's bytes
// from storage (*ReadError) and ctx's errors are returned: such an
// inventory is not to be cached.
func Analyze(ctx context.Context, l Layer, opts Options) (*Inventory, error) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	as := analyzers()
	r := &result{osRels: map[string]*OSRelease{}, owners: map[string]string{}, dpkgGo: map[string]bool{}}
	// A layer whose files can be opened after the walk (SplitLayer) has
	// its executables checked for Go build information at the end, once
	// the OS packages' file lists are known.
	_, late := l.(lateOpener)
	type lateFile struct {
		f    File
		open OpenFunc
	}
	var deferred []lateFile
	r.inv.AnalyzerVersion = AnalyzerVersion
	r.inv.Packages = []Package{}
	st, err := l.Walk(ctx, func(f File, open OpenFunc) error {
		if f.Path == "" {
			return nil
		}
		dir, base := path.Split(f.Path)
		dir = strings.TrimSuffix(dir, "/")
		if strings.HasPrefix(base, whiteoutPrefix) {
			if base == whiteoutOpaque {
				r.inv.Opaque = append(r.inv.Opaque, dir)
			} else {
				r.inv.Whiteouts = append(r.inv.Whiteouts, path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)))
			}
			return nil
		}
		shadow := false
		for _, a := range as {
			if !a.match(f) {
				continue
			}
			if _, list := a.(dpkgListAnalyzer); !list {
				shadow = true
			}
			if !f.Regular() {
				if f.Type == '1' { // a hard link: its content is another entry's
					r.note(f.Path, "hard link to %q not followed", f.Link)
				}
				continue
			}
			if f.Size > opts.MaxFileSize {
				r.note(f.Path, "skipped: %d bytes, more than the %d-byte cap", f.Size, opts.MaxFileSize)
				continue
			}
			if _, bin := a.(goBinaryAnalyzer); bin && late {
				deferred = append(deferred, lateFile{f, open})
				continue
			}
			c, err := open()
			if err != nil {
				var re *ReadError
				if errors.As(err, &re) {
					return err
				}
				r.note(f.Path, "not read: %v", err)
				continue
			}
			if err := a.read(f, c, r); err != nil {
				var re *ReadError
				if errors.As(err, &re) || ctx.Err() != nil {
					return err
				}
				r.note(f.Path, "%v", err)
			}
		}
		// Executables are shadows too: a Go binary replaced by a file of
		// another kind is gone. Symbolic links (mode 0777) are left out:
		// a root file system has thousands, and a binary replaced by a
		// link is rare (it would still be reported).
		if shadow || (f.Type != '5' && f.Type != '2' && f.Mode&0o111 != 0) {
			r.inv.Shadows = append(r.inv.Shadows, f.Path)
		}
		return nil
	})
	if err == nil {
		for _, d := range deferred {
			if err = ctx.Err(); err != nil {
				break
			}
			if r.notGoBinary(d.f.Path) {
				continue
			}
			c, oerr := d.open()
			if oerr == nil {
				oerr = goBinaryAnalyzer{}.read(d.f, c, r)
			}
			var re *ReadError
			if errors.As(oerr, &re) {
				err = oerr
				break
			}
			if oerr != nil {
				r.note(d.f.Path, "%v", oerr)
			}
		}
		if lo, ok := l.(lateOpener); ok {
			st = lo.stats()
		}
	}
	r.inv.Stats = st
	var tfe *TarFormatError
	switch {
	case errors.As(err, &tfe):
		r.note("", "layer not read to its end: %v", tfe)
		r.inv.Incomplete = true
	case err != nil:
		return nil, fmt.Errorf("scan: analyzing layer: %w", err)
	}
	r.finish()
	return &r.inv, nil
}

// finish settles what needs the whole layer: the os-release to report
// and the owners of language packages.
func (r *result) finish() {
	// The same rule for layers read in one pass: what a non-Go dpkg
	// package's executable held is not reported.
	r.inv.Packages = slices.DeleteFunc(r.inv.Packages, func(p Package) bool {
		return p.Manager == "go-binary" && r.notGoBinary(p.Path)
	})
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if o := r.osRels[p]; o != nil {
			r.inv.OS = o
			break
		}
	}
	for i := range r.inv.Packages {
		p := &r.inv.Packages[i]
		if p.OwnedBy == "" && p.Manager != "dpkg" && p.Manager != "apk" {
			p.OwnedBy = r.owners[p.Path]
		}
	}
	slices.SortFunc(r.inv.Packages, comparePackages)
	r.inv.Packages = slices.CompactFunc(r.inv.Packages, func(a, b Package) bool { return comparePackages(a, b) == 0 })
}

func comparePackages(a, b Package) int {
	for _, c := range [][2]string{{a.Ecosystem, b.Ecosystem}, {a.Name, b.Name}, {a.Version, b.Version}, {a.Path, b.Path}} {
		if n := strings.Compare(c[0], c[1]); n != 0 {
			return n
		}
	}
	return 0
}

// lateOpener is a Layer whose OpenFuncs stay valid after Walk returns,
// and whose read statistics can be taken again after such reads.
type lateOpener interface {
	stats() ReadStats
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)
