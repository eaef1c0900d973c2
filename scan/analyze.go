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
	// owners maps a path an OS package installed to that package, for the
	// paths language packages are read from.
	owners map[string]string
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
	r := &result{osRels: map[string]*OSRelease{}, owners: map[string]string{}}
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
		if shadow || (f.Type != '5' && f.Mode&0o111 != 0) {
			r.inv.Shadows = append(r.inv.Shadows, f.Path)
		}
		return nil
	})
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

// ownable reports whether an OS package's file list entry is worth
// remembering: a path a language package is read from.
func ownable(p string) bool {
	f := File{Path: p, Type: '0'}
	return pythonAnalyzer{}.match(f) || npmAnalyzer{}.match(f) || inBinDir(p)
}

func inBinDir(p string) bool {
	dir := path.Dir(p)
	return path.Base(dir) == "bin" || path.Base(dir) == "sbin" || strings.Contains(p, "/libexec/")
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)
