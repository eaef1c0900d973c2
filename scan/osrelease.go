package scan

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// osReleaseAnalyzer reads os-release(5): etc/os-release, else
// usr/lib/os-release (often etc/os-release is a symbolic link to it).
type osReleaseAnalyzer struct{}

func (osReleaseAnalyzer) match(f File) bool {
	return f.Path == "etc/os-release" || f.Path == "usr/lib/os-release"
}

const maxOSReleaseSize = 64 << 10

func (osReleaseAnalyzer) read(f File, c Content, r *result) error {
	if c.Size() > maxOSReleaseSize {
		return fmt.Errorf("os-release of %d bytes, more than %d", c.Size(), maxOSReleaseSize)
	}
	vals, err := parseOSRelease(c)
	if err != nil {
		return err
	}
	if vals["ID"] == "" {
		return fmt.Errorf("os-release has no ID")
	}
	r.osRels[f.Path] = &OSRelease{ID: vals["ID"], IDLike: vals["ID_LIKE"], VersionID: vals["VERSION_ID"],
		VersionCodename: vals["VERSION_CODENAME"], PrettyName: vals["PRETTY_NAME"], Path: f.Path}
	return nil
}

// parseOSRelease parses KEY=value lines with shell-like quoting, as
// os-release(5) specifies.
func parseOSRelease(c Content) (map[string]string, error) {
	lr := newLineReader(c, 4096)
	vals := map[string]string{}
	for {
		line, long, err := lr.next()
		if err == io.EOF {
			return vals, nil
		}
		if err != nil {
			return nil, err
		}
		if long {
			continue
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			continue
		}
		vals[string(k)] = unquoteShell(string(v))
	}
}

// unquoteShell undoes the quoting os-release allows: double quotes (with
// backslash escapes of $ " \ `), single quotes, or a bare word.
func unquoteShell(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("$\"\\`", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}
