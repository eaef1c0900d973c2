package version

import "fmt"

// apk version tokens, in apk-tools' order (version.c).
const (
	tokInvalid = iota - 1
	tokDigitOrZero
	tokDigit
	tokLetter
	tokSuffix
	tokSuffixNo
	tokRevisionNo
	tokEnd
)

var (
	apkPreSuffixes  = []string{"alpha", "beta", "pre", "rc"}
	apkPostSuffixes = []string{"cvs", "svn", "git", "hg", "p"}
)

// apkVersion is a version being tokenised.
type apkVersion struct {
	s string
	i int
}

// nextToken is apk-tools' next_token: the kind of the token at the
// current position, consuming its separator.
func (v *apkVersion) nextToken(t int) int {
	n := tokInvalid
	switch {
	case v.i >= len(v.s):
		n = tokEnd
	case (t == tokDigit || t == tokDigitOrZero) && v.s[v.i] >= 'a' && v.s[v.i] <= 'z':
		n = tokLetter
	case t == tokLetter && isDigit(v.s[v.i]):
		n = tokDigit
	case t == tokSuffix && isDigit(v.s[v.i]):
		n = tokSuffixNo
	default:
		switch v.s[v.i] {
		case '.':
			n = tokDigitOrZero
		case '_':
			n = tokSuffix
		case '-':
			if v.i+1 < len(v.s) && v.s[v.i+1] == 'r' {
				n = tokRevisionNo
				v.i++
			}
		}
		v.i++
	}
	if n < t {
		if !(n == tokDigitOrZero && t == tokDigit || n == tokSuffix && t == tokSuffixNo || n == tokDigit && t == tokLetter) {
			n = tokInvalid
		}
	}
	return n
}

// token is apk-tools' get_token: the value of the token of kind *t at the
// current position; *t becomes the next token's kind. Numbers are
// compared as digit strings here (apk-tools' int overflows past nine
// digits; dates and git stamps in versions have more).
func (v *apkVersion) token(t *int) (num string, neg int, err bool) {
	// A token's value is (neg, num): neg orders first (leading zeros and
	// pre-release suffixes are negative), then num as a number.
	if v.i >= len(v.s) {
		*t = tokEnd
		return "", 0, false
	}
	nt := tokInvalid
	start := v.i
	switch *t {
	case tokDigitOrZero:
		if v.s[v.i] == '0' {
			// apk-tools 2.14: the zeros after the first one lead, the
			// last zero stays to be read as a number.
			for v.i+1 < len(v.s) && v.s[v.i+1] == '0' {
				v.i++
			}
			nt = tokDigit
			neg = -(v.i - start)
			break
		}
		fallthrough
	case tokDigit, tokSuffixNo, tokRevisionNo:
		for v.i < len(v.s) && isDigit(v.s[v.i]) {
			v.i++
		}
		if v.i-start >= 18 {
			*t = tokInvalid
			return "", -1, true
		}
		num = v.s[start:v.i]
	case tokLetter:
		neg = int(v.s[v.i])
		v.i++
	case tokSuffix:
		found := false
		for k, s := range apkPreSuffixes {
			if len(v.s)-v.i >= len(s) && v.s[v.i:v.i+len(s)] == s {
				neg = k - len(apkPreSuffixes)
				v.i += len(s)
				found = true
				break
			}
		}
		if !found {
			for k, s := range apkPostSuffixes {
				if len(v.s)-v.i >= len(s) && v.s[v.i:v.i+len(s)] == s {
					neg = k
					v.i += len(s)
					found = true
					break
				}
			}
		}
		if !found {
			*t = tokInvalid
			return "", -1, true
		}
	default:
		*t = tokInvalid
		return "", -1, true
	}
	switch {
	case v.i >= len(v.s):
		*t = tokEnd
	case nt != tokInvalid:
		*t = nt
	default:
		*t = v.nextToken(*t)
	}
	return num, neg, false
}

// compareToken orders (neg, num) pairs: apk-tools keeps one int per token,
// negative for leading zeros and pre-release suffixes, the letter's code
// for a letter, the number for digits. Tokens of one kind only ever meet
// tokens of the same kind here, so comparing neg then num is the same.
func compareToken(an string, aneg int, bn string, bneg int) int {
	if aneg != bneg {
		return sign(aneg - bneg)
	}
	return compareDigits(an, bn)
}

// ValidAPK checks an Alpine package version as apk-tools 2.14 does.
func ValidAPK(s string) error {
	v := &apkVersion{s: s}
	t := tokDigit
	for t != tokEnd && t != tokInvalid {
		if _, _, bad := v.token(&t); bad {
			break
		}
	}
	if t != tokEnd || s == "" {
		return fmt.Errorf("%w Alpine version %q", ErrInvalid, s)
	}
	return nil
}

// APK compares two Alpine package versions as apk-tools 2.14 (the apk of
// Alpine up to 3.22) does: numbers numerically (leading zeros after a
// dot make a component smaller), a letter after a number, pre-release
// suffixes (_alpha, _beta, _pre, _rc) before the release, post-release
// ones (_cvs, _svn, _git, _hg, _p) after, then -rN. Numbers of 18 digits
// or more are invalid, as there.
func APK(a, b string) (int, error) {
	if err := ValidAPK(a); err != nil {
		return 0, err
	}
	if err := ValidAPK(b); err != nil {
		return 0, err
	}
	va, vb := &apkVersion{s: a}, &apkVersion{s: b}
	at, bt := tokDigit, tokDigit
	var an, bn string
	var aneg, bneg int
	for at == bt && at != tokEnd && at != tokInvalid && compareToken(an, aneg, bn, bneg) == 0 {
		an, aneg, _ = va.token(&at)
		bn, bneg, _ = vb.token(&bt)
	}
	if c := compareToken(an, aneg, bn, bneg); c != 0 {
		return c, nil
	}
	if at == bt {
		return 0, nil
	}
	// Equal so far and one goes on: it is greater, unless what follows
	// is a pre-release suffix.
	if at == tokSuffix {
		tt := at
		if _, neg, _ := va.token(&tt); neg < 0 {
			return -1, nil
		}
	}
	if bt == tokSuffix {
		tt := bt
		if _, neg, _ := vb.token(&tt); neg < 0 {
			return 1, nil
		}
	}
	if at > bt {
		return -1, nil
	}
	if bt > at {
		return 1, nil
	}
	return 0, nil
}
