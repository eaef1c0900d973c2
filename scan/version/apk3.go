package version

import "fmt"

// apk-tools 3 tokens, in its order (src/version.c).
const (
	t3InitialDigit = iota
	t3Digit
	t3Letter
	t3Suffix
	t3SuffixNo
	t3CommitHash
	t3RevisionNo
	t3End
	t3Invalid
)

// apk-tools 3 suffix values: pre-releases below none, post-releases above.
var apk3Suffixes = map[string]int{"alpha": 1, "beta": 2, "pre": 3, "rc": 4, "cvs": 6, "svn": 7, "git": 8, "hg": 9, "p": 10}

const apk3SuffixNone = 5

type apk3Token struct {
	kind   int
	value  string // the token's text
	suffix int
}

type apk3Version struct {
	s string
	i int
	t apk3Token
}

func (v *apk3Version) digits() {
	start := v.i
	for v.i < len(v.s) && isDigit(v.s[v.i]) {
		v.i++
	}
	v.t.value = v.s[start:v.i]
	if v.t.value == "" {
		v.t.kind = t3Invalid
	}
}

func (v *apk3Version) first() {
	v.t.kind = t3InitialDigit
	v.digits()
}

func (v *apk3Version) next() {
	if v.i >= len(v.s) {
		v.t.kind = t3End
		return
	}
	t := &v.t
	switch c := v.s[v.i]; {
	case c >= 'a' && c <= 'z':
		if t.kind > t3Digit {
			t.kind = t3Invalid
			return
		}
		t.value, t.kind = v.s[v.i:v.i+1], t3Letter
		v.i++
	case c == '.' || isDigit(c):
		if c == '.' {
			if t.kind > t3Digit {
				t.kind = t3Invalid
				return
			}
			v.i++
		}
		switch t.kind {
		case t3InitialDigit, t3Digit:
			t.kind = t3Digit
		case t3Suffix:
			t.kind = t3SuffixNo
		default:
			t.kind = t3Invalid
			return
		}
		v.digits()
	case c == '_':
		if t.kind > t3SuffixNo {
			t.kind = t3Invalid
			return
		}
		v.i++
		start := v.i
		for v.i < len(v.s) && v.s[v.i] >= 'a' && v.s[v.i] <= 'z' {
			v.i++
		}
		t.value = v.s[start:v.i]
		suf, ok := apk3Suffixes[t.value]
		if !ok {
			t.kind = t3Invalid
			return
		}
		t.suffix, t.kind = suf, t3Suffix
	case c == '~':
		if t.kind >= t3CommitHash {
			t.kind = t3Invalid
			return
		}
		v.i++
		start := v.i
		for v.i < len(v.s) && (isDigit(v.s[v.i]) || v.s[v.i] >= 'a' && v.s[v.i] <= 'f') {
			v.i++
		}
		t.value = v.s[start:v.i]
		if t.value == "" {
			t.kind = t3Invalid
			return
		}
		t.kind = t3CommitHash
	case c == '-':
		if t.kind >= t3RevisionNo || v.i+1 >= len(v.s) || v.s[v.i+1] != 'r' {
			t.kind = t3Invalid
			return
		}
		v.i += 2
		t.kind = t3RevisionNo
		v.digits()
	default:
		t.kind = t3Invalid
	}
}

// compareApk3Token compares two tokens of the same kind.
func compareApk3Token(a, b apk3Token) int {
	switch a.kind {
	case t3Digit:
		if a.value[0] == '0' || b.value[0] == '0' {
			return sortBlob(a.value, b.value) // leading zeros: as strings
		}
		return compareDigits(a.value, b.value)
	case t3InitialDigit, t3SuffixNo, t3RevisionNo:
		return compareDigits(a.value, b.value)
	case t3Letter:
		return sign(int(a.value[0]) - int(b.value[0]))
	case t3Suffix:
		return sign(a.suffix - b.suffix)
	}
	return sortBlob(a.value, b.value)
}

// sortBlob is apk's apk_blob_sort: bytes, then the shorter first.
func sortBlob(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return sign(int(a[i]) - int(b[i]))
		}
	}
	return sign(len(a) - len(b))
}

// ValidAPK3 checks an Alpine package version as apk-tools 3 does:
// digit{.digit}...{letter}{_suffix{number}}...{~hash}{-rN}.
func ValidAPK3(s string) error {
	v := &apk3Version{s: s}
	for v.first(); v.t.kind < t3End; v.next() {
	}
	if v.t.kind != t3End {
		return fmt.Errorf("%w Alpine version %q", ErrInvalid, s)
	}
	return nil
}

// APK3 compares two Alpine package versions as apk-tools 3 (the apk of
// Alpine 3.23 and later) does. It differs from APK in the details: a
// component with a leading zero compares as a string, a letter cannot be
// followed by digits, a commit hash (~hex) may come before -rN.
func APK3(a, b string) (int, error) {
	if err := ValidAPK3(a); err != nil {
		return 0, err
	}
	if err := ValidAPK3(b); err != nil {
		return 0, err
	}
	va, vb := &apk3Version{s: a}, &apk3Version{s: b}
	va.first()
	vb.first()
	for va.t.kind == vb.t.kind && va.t.kind < t3End {
		if c := compareApk3Token(va.t, vb.t); c != 0 {
			return c, nil
		}
		va.next()
		vb.next()
	}
	ta, tb := va.t, vb.t
	switch {
	case ta.kind == tb.kind:
		return 0, nil
	case ta.kind == t3Suffix && ta.suffix < apk3SuffixNone:
		return -1, nil
	case tb.kind == t3Suffix && tb.suffix < apk3SuffixNone:
		return 1, nil
	case ta.kind > tb.kind:
		return -1, nil
	case tb.kind > ta.kind:
		return 1, nil
	}
	return 0, nil
}
