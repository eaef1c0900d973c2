package scan

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
)

// dpkgAnalyzer reads dpkg's database of installed packages:
// var/lib/dpkg/status, and the per-package files distroless images keep
// in var/lib/dpkg/status.d/ instead.
type dpkgAnalyzer struct{}

func (dpkgAnalyzer) match(f File) bool {
	return f.Path == "var/lib/dpkg/status" ||
		path.Dir(f.Path) == "var/lib/dpkg/status.d" && !strings.HasSuffix(f.Path, ".md5sums")
}

const maxControlLine = 64 << 10

var (
	dpkgNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	dpkgSourceRE  = regexp.MustCompile(`^([a-z0-9][a-z0-9+.-]+)(?:\s+\(([^()\s]+)\))?$`)
	dpkgVersionRE = regexp.MustCompile(`^[A-Za-z0-9.+~:-]+$`)
)

func (dpkgAnalyzer) read(f File, c Content, r *result) error {
	return parseControl(c, func(fields map[string]string, line int) {
		pkg, ver := fields["package"], fields["version"]
		if pkg == "" && ver == "" {
			return // a paragraph of nothing we know
		}
		if !dpkgNameRE.MatchString(pkg) || !dpkgVersionRE.MatchString(ver) {
			r.note(f.Path, "record at line %d: bad package name %q or version %q", line, clip(pkg), clip(ver))
			return
		}
		if st := strings.Fields(fields["status"]); len(st) == 3 && (st[2] == "not-installed" || st[2] == "config-files") {
			return
		}
		p := Package{Name: pkg, Version: ver, Ecosystem: EcosystemDebian, Manager: "dpkg", Path: f.Path,
			Source: pkg, SourceVersion: ver}
		r.dpkgGo[pkg] = builtWithGo(fields["built-using"]) || builtWithGo(fields["static-built-using"])
		if src := fields["source"]; src != "" {
			m := dpkgSourceRE.FindStringSubmatch(src)
			if m == nil {
				r.note(f.Path, "package %s: bad Source %q", pkg, clip(src))
			} else {
				p.Source = m[1]
				if m[2] != "" {
					p.SourceVersion = m[2]
				}
			}
		}
		r.add(p)
	}, func(line int) { r.note(f.Path, "line %d longer than %d bytes skipped", line, maxControlLine) })
}

// builtWithGo says whether a Built-Using field names a Go toolchain
// ("golang-1.19 (= 1.19.8-2)").
func builtWithGo(v string) bool {
	for _, part := range strings.Split(v, ",") {
		if strings.HasPrefix(strings.TrimSpace(part), "golang-") {
			return true
		}
	}
	return false
}

// parseControl reads deb822 paragraphs (dpkg status, apk is different)
// and calls fn with each paragraph's single-line fields, keys lower-cased,
// and the line the paragraph starts on. Continuation lines are skipped.
func parseControl(c Content, fn func(fields map[string]string, line int), long func(line int)) error {
	lr := newLineReader(c, maxControlLine)
	fields := map[string]string{}
	start := 0
	flush := func() {
		if len(fields) > 0 {
			fn(fields, start)
			clear(fields)
		}
	}
	for {
		line, isLong, err := lr.next()
		if err == io.EOF {
			flush()
			return nil
		}
		if err != nil {
			return err
		}
		if isLong {
			long(lr.line)
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		if len(fields) == 0 {
			start = lr.line
		}
		if len(fields) < 64 {
			fields[strings.ToLower(string(bytes.TrimSpace(k)))] = string(bytes.TrimSpace(v))
		}
	}
}

// clip shortens a value quoted in a note.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// dpkgListAnalyzer reads var/lib/dpkg/info/PACKAGE.list, the files each
// package installed, to name the OS package that owns a language
// package's metadata (Debian's python3-* packages).
type dpkgListAnalyzer struct{}

func (dpkgListAnalyzer) match(f File) bool {
	return path.Dir(f.Path) == "var/lib/dpkg/info" && strings.HasSuffix(f.Path, ".list")
}

func (dpkgListAnalyzer) read(f File, c Content, r *result) error {
	pkg := strings.TrimSuffix(path.Base(f.Path), ".list")
	pkg, _, _ = strings.Cut(pkg, ":") // libfoo:amd64
	lr := newLineReader(c, 4096)
	for {
		line, long, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if long {
			continue
		}
		if p := cleanPath(string(line)); p != "" {
			r.own(p, pkg)
			// Merged /usr: a package listing /bin/ls installs
			// usr/bin/ls (bin is a link to usr/bin), and the other way.
			if alias := usrMergeAlias(p); alias != "" {
				r.own(alias, pkg)
			}
		}
	}
}

// usrMergeAlias is the other name of a path under a merged /usr: bin/x
// and usr/bin/x, for bin, sbin and the lib directories; "" for others.
func usrMergeAlias(p string) string {
	top, rest, ok := strings.Cut(p, "/")
	if !ok {
		return ""
	}
	if top == "usr" {
		top, _, _ = strings.Cut(rest, "/")
		if mergedDirs[top] {
			return rest
		}
		return ""
	}
	if mergedDirs[top] {
		return "usr/" + p
	}
	return ""
}

var mergedDirs = map[string]bool{"bin": true, "sbin": true, "lib": true, "lib32": true, "lib64": true, "libx32": true}

// rpmAnalyzer notes RPM databases: they are not read (no pure-Go reader
// of both the sqlite and Berkeley DB formats that is maintained and fits
// this module's dependencies).
type rpmAnalyzer struct{}

func (rpmAnalyzer) match(f File) bool {
	switch f.Path {
	case "var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite",
		"usr/lib/sysimage/rpm/Packages", "usr/lib/sysimage/rpm/Packages.db", "usr/lib/sysimage/rpm/rpmdb.sqlite":
		return true
	}
	return false
}

func (rpmAnalyzer) read(f File, c Content, r *result) error {
	return fmt.Errorf("RPM database not read: RPM packages are not inventoried")
}
