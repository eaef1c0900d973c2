package scan

import (
	"io"
	"regexp"
)

// apkAnalyzer reads Alpine's database of installed packages,
// lib/apk/db/installed: paragraphs of "K:value" lines (P name, V version,
// o origin, F directory, R file in the directory before it).
type apkAnalyzer struct{}

func (apkAnalyzer) match(f File) bool { return f.Path == "lib/apk/db/installed" }

var (
	apkNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]*$`)
	apkVersionRE = regexp.MustCompile(`^[0-9][0-9A-Za-z._~+-]*$`)
)

func (apkAnalyzer) read(f File, c Content, r *result) error {
	lr := newLineReader(c, maxControlLine)
	var name, ver, origin, dir string
	var owned []string
	start := 0
	flush := func() {
		defer func() { name, ver, origin, dir, owned = "", "", "", "", owned[:0] }()
		if name == "" && ver == "" {
			return
		}
		if !apkNameRE.MatchString(name) || !apkVersionRE.MatchString(ver) {
			r.note(f.Path, "record at line %d: bad package name %q or version %q", start, clip(name), clip(ver))
			return
		}
		p := Package{Name: name, Version: ver, Ecosystem: EcosystemAlpine, Manager: "apk", Path: f.Path,
			Source: name, SourceVersion: ver}
		if origin != "" {
			p.Source = origin
		}
		r.add(p)
		for _, o := range owned {
			r.own(o, name)
		}
	}
	for {
		line, long, err := lr.next()
		if err == io.EOF {
			flush()
			return nil
		}
		if err != nil {
			return err
		}
		if long {
			r.note(f.Path, "line %d longer than %d bytes skipped", lr.line, maxControlLine)
			continue
		}
		if len(line) == 0 {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			continue
		}
		if name == "" && ver == "" && origin == "" {
			start = lr.line
		}
		v := string(line[2:])
		switch line[0] {
		case 'P':
			name = v
		case 'V':
			ver = v
		case 'o':
			origin = v
		case 'F':
			dir = cleanPath(v)
		case 'R':
			if p := cleanPath(dir + "/" + v); len(owned) < 1<<16 {
				owned = append(owned, p)
			}
		}
	}
}
