package scan

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// pythonAnalyzer reads installed Python distributions' metadata: a
// wheel's NAME-VERSION.dist-info/METADATA, a setuptools egg's
// NAME.egg-info/PKG-INFO, or an egg-info that is a single file (as
// distutils wrote them, and Debian's python3-* packages still ship).
type pythonAnalyzer struct{}

func (pythonAnalyzer) match(f File) bool {
	p := f.Path
	return strings.HasSuffix(p, ".dist-info/METADATA") || strings.HasSuffix(p, ".egg-info/PKG-INFO") ||
		strings.HasSuffix(p, ".egg-info") && (f.Type == '0' || f.Type == 0)
}

// pep508NameRE is a valid distribution name (PEP 508).
var pep508NameRE = regexp.MustCompile(`^(?i:[A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`)

func (pythonAnalyzer) read(f File, c Content, r *result) error {
	name, ver, err := parsePythonMetadata(c)
	if err != nil {
		return err
	}
	if name == "" || ver == "" {
		return fmt.Errorf("metadata without Name or Version")
	}
	if !pep508NameRE.MatchString(name) || strings.ContainsAny(ver, " \t") || len(ver) > 128 {
		return fmt.Errorf("bad distribution name %q or version %q", clip(name), clip(ver))
	}
	r.add(Package{Name: name, Version: ver, Ecosystem: EcosystemPyPI, Manager: "python", Path: f.Path})
	return nil
}

// parsePythonMetadata reads the Name and Version headers of core
// metadata (an email-style header block; the body after the first blank
// line is the description and is not read).
func parsePythonMetadata(c Content) (name, version string, err error) {
	lr := newLineReader(c, maxControlLine)
	for {
		line, long, err := lr.next()
		if err == io.EOF {
			return name, version, nil
		}
		if err != nil {
			return "", "", err
		}
		if long {
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return name, version, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		switch strings.ToLower(string(k)) {
		case "name":
			if name == "" {
				name = string(bytes.TrimSpace(v))
			}
		case "version":
			if version == "" {
				version = string(bytes.TrimSpace(v))
			}
		}
	}
}

// NormalizePyPI is PEP 503's normalised form of a distribution name:
// lower case, runs of "-", "_" and "." as one "-".
func NormalizePyPI(name string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(name) {
		if r == '-' || r == '_' || r == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}
