package version

import (
	"fmt"
	"regexp"
	"strings"
)

// pep440RE is PEP 440's permissive version syntax (Appendix B), which
// the packaging library accepts and normalises.
var pep440RE = regexp.MustCompile(`(?i)^\s*v?` +
	`(?:([0-9]+)!)?` + // epoch
	`([0-9]+(?:\.[0-9]+)*)` + // release
	`(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?([0-9]+)?)?` + // pre
	`(?:-([0-9]+)|[-_.]?(post|rev|r)[-_.]?([0-9]+)?)?` + // post
	`(?:[-_.]?(dev)[-_.]?([0-9]+)?)?` + // dev
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$`) // local

// PEP440Version is a parsed PEP 440 version.
type PEP440Version struct {
	Epoch   string   // digits, no leading zeros ("" is 0)
	Release []string // digits, no leading zeros, trailing zeros dropped
	Pre     string   // "a", "b", "rc" or ""
	PreN    string
	Post    bool
	PostN   string
	Dev     bool
	DevN    string
	Local   []string // lower case
}

func trimZeros(s string) string { return strings.TrimLeft(s, "0") }

// ParsePEP440 parses a version in any spelling PEP 440 normalises
// ("1.0-RC1", "v2!1.0.post-2.dev", "1.0+ubuntu.1").
func ParsePEP440(s string) (PEP440Version, error) {
	m := pep440RE.FindStringSubmatch(s)
	if m == nil {
		return PEP440Version{}, fmt.Errorf("%w PEP 440 version %q", ErrInvalid, s)
	}
	var v PEP440Version
	v.Epoch = trimZeros(m[1])
	for _, p := range strings.Split(m[2], ".") {
		v.Release = append(v.Release, trimZeros(p))
	}
	for len(v.Release) > 0 && v.Release[len(v.Release)-1] == "" {
		v.Release = v.Release[:len(v.Release)-1]
	}
	if m[3] != "" {
		switch strings.ToLower(m[3]) {
		case "a", "alpha":
			v.Pre = "a"
		case "b", "beta":
			v.Pre = "b"
		default: // c, rc, pre, preview
			v.Pre = "rc"
		}
		v.PreN = trimZeros(m[4])
	}
	switch {
	case m[5] != "":
		v.Post, v.PostN = true, trimZeros(m[5])
	case m[6] != "":
		v.Post, v.PostN = true, trimZeros(m[7])
	}
	if m[8] != "" {
		v.Dev, v.DevN = true, trimZeros(m[9])
	}
	if m[10] != "" {
		v.Local = strings.FieldsFunc(strings.ToLower(m[10]), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	}
	return v, nil
}

// PEP440 compares two versions as the packaging library orders them
// (PEP 440): epoch, release (trailing zeros ignored), then
// dev-only < pre-releases < the release < post-releases, dev releases
// before what they lead to, and a local version after the public one.
func PEP440(a, b string) (int, error) {
	va, err := ParsePEP440(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParsePEP440(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// Compare orders v against w.
func (v PEP440Version) Compare(w PEP440Version) int {
	if c := compareDigits(v.Epoch, w.Epoch); c != 0 {
		return c
	}
	for i := 0; i < max(len(v.Release), len(w.Release)); i++ {
		var x, y string
		if i < len(v.Release) {
			x = v.Release[i]
		}
		if i < len(w.Release) {
			y = w.Release[i]
		}
		if c := compareDigits(x, y); c != 0 {
			return c
		}
	}
	if c := v.preKey().compare(w.preKey()); c != 0 {
		return c
	}
	if c := optKey(v.Post, v.PostN, -1).compare(optKey(w.Post, w.PostN, -1)); c != 0 {
		return c
	}
	if c := optKey(v.Dev, v.DevN, 1).compare(optKey(w.Dev, w.DevN, 1)); c != 0 {
		return c
	}
	return compareLocal(v.Local, w.Local)
}

// key is a number with infinities: inf -1 or +1, else n.
type key struct {
	inf  int
	rank int // pre-release letter: a < b < rc
	n    string
}

func (k key) compare(o key) int {
	if k.inf != o.inf {
		return sign(k.inf - o.inf)
	}
	if k.inf != 0 {
		return 0
	}
	if k.rank != o.rank {
		return sign(k.rank - o.rank)
	}
	return compareDigits(k.n, o.n)
}

// optKey: absent is the infinity given, present its number.
func optKey(present bool, n string, absent int) key {
	if !present {
		return key{inf: absent}
	}
	return key{n: n}
}

// preKey: a dev release with no pre- or post-release sorts before any
// pre-release of its release (-inf); no pre-release sorts after them (+inf).
func (v PEP440Version) preKey() key {
	switch {
	case v.Pre == "" && !v.Post && v.Dev:
		return key{inf: -1}
	case v.Pre == "":
		return key{inf: 1}
	}
	return key{rank: map[string]int{"a": 1, "b": 2, "rc": 3}[v.Pre], n: v.PreN}
}

// compareLocal: no local version sorts first; segments compare in order,
// numbers numerically and after any alphanumeric segment, a longer
// version after its prefix.
func compareLocal(a, b []string) int {
	if len(a) == 0 || len(b) == 0 {
		return sign(len(a) - len(b))
	}
	for i := 0; i < min(len(a), len(b)); i++ {
		an, bn := isNumber(a[i]), isNumber(b[i])
		switch {
		case an && bn:
			if c := compareDigits(a[i], b[i]); c != 0 {
				return c
			}
		case an:
			return 1
		case bn:
			return -1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return sign(len(a) - len(b))
}

func isNumber(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
