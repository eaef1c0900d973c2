package version

import (
	"fmt"
	"strings"
)

// ValidDpkg checks a Debian version: [epoch:]upstream[-revision], the
// epoch a number, upstream starting with a digit, only the characters
// Debian policy allows.
func ValidDpkg(v string) error {
	e, u, r := splitDpkg(v)
	bad := func(why string) error { return fmt.Errorf("%w Debian version %q: %s", ErrInvalid, v, why) }
	if strings.Contains(v, ":") {
		if e == "" || strings.Trim(e, "0123456789") != "" {
			return bad("epoch is not a number")
		}
	}
	if u == "" || u[0] < '0' || u[0] > '9' {
		return bad("upstream version does not start with a digit")
	}
	for _, c := range u {
		if !isAlnum(c) && !strings.ContainsRune(".+~-:", c) {
			return bad("character not allowed in upstream version")
		}
	}
	if strings.HasSuffix(v, "-") {
		return bad("empty revision")
	}
	for _, c := range r {
		if !isAlnum(c) && !strings.ContainsRune(".+~", c) {
			return bad("character not allowed in revision")
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// splitDpkg splits at the first ":" and the last "-".
func splitDpkg(v string) (epoch, upstream, revision string) {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch, v = v[:i], v[i+1:]
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// Dpkg compares two Debian versions as dpkg --compare-versions does:
// epochs numerically, then upstream versions and revisions with
// verrevcmp (letters before non-letters, "~" before everything, even the
// end; digit runs numerically). A missing epoch is 0, a missing revision
// equals "0". Versions are not validated; see ValidDpkg.
func Dpkg(a, b string) int {
	ea, ua, ra := splitDpkg(a)
	eb, ub, rb := splitDpkg(b)
	if c := compareDigits(ea, eb); c != 0 {
		return c
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

// order is dpkg's weight of a non-digit character.
func order(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func verrevcmp(a, b string) int {
	at := func(s string, i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isDigit(a[i]) || j < len(b) && !isDigit(b[j]) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		si := i
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		sj := j
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareDigits(a[si:min(i, len(a))], b[sj:min(j, len(b))]); c != 0 {
			return c
		}
	}
	return 0
}

// compareDigits compares two runs of decimal digits (empty is 0) by value,
// whatever their length.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
