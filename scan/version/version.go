// Package version orders package versions the way each ecosystem's own
// tools do, as OSV's range rules need them: dpkg (Debian, Ubuntu), apk
// (Alpine), PEP 440 (PyPI), Semantic Versioning 2.0 (npm, and OSV's SEMVER
// ranges) and Go module versions (golang.org/x/mod/semver, with the "v"
// OSV records leave out).
//
// The dpkg, apk and PEP 440 orderings are written here, from the
// reference implementations (dpkg's verrevcmp, apk-tools' version.c,
// the packaging library's Version key), because the Go libraries found
// for them either overflow on long digit runs or approximate the rules.
package version

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// ErrInvalid is wrapped by errors for versions an ordering cannot place.
var ErrInvalid = errors.New("version: invalid")

// ErrUnsupported is returned for an ecosystem without an ordering here.
var ErrUnsupported = errors.New("version: no ordering for ecosystem")

// Compare compares a and b in the ordering of an OSV ecosystem ("Debian",
// "Debian:12", "PyPI", ...; the release after ":" does not matter): -1,
// 0 or +1. An invalid version is an error.
func Compare(ecosystem, a, b string) (int, error) {
	base, release, _ := strings.Cut(ecosystem, ":")
	switch base {
	case "Debian", "Ubuntu":
		if err := ValidDpkg(a); err != nil {
			return 0, err
		}
		if err := ValidDpkg(b); err != nil {
			return 0, err
		}
		return Dpkg(a, b), nil
	case "Alpine":
		if apk3Release(release) {
			return APK3(a, b)
		}
		return APK(a, b)
	case "PyPI":
		return PEP440(a, b)
	case "npm":
		return Semver(a, b)
	case "Go":
		return Go(a, b)
	}
	return 0, fmt.Errorf("%w %q", ErrUnsupported, ecosystem)
}

// apk3Release reports whether an Alpine release ("v3.23", "edge") ships
// apk-tools 3, which orders some versions differently from apk-tools 2.
// Without a release, apk-tools 2's ordering is used.
func apk3Release(r string) bool {
	if r == "edge" {
		return true
	}
	var major, minor int
	if _, err := fmt.Sscanf(r, "v%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 3 || major == 3 && minor >= 23
}

// Semver compares two Semantic Versioning 2.0 versions (no "v"): build
// metadata does not count, pre-releases order before their release,
// identifier by identifier.
func Semver(a, b string) (int, error) {
	va, vb := "v"+a, "v"+b
	if !fullSemver(va) {
		return 0, fmt.Errorf("%w semantic version %q", ErrInvalid, a)
	}
	if !fullSemver(vb) {
		return 0, fmt.Errorf("%w semantic version %q", ErrInvalid, b)
	}
	return semver.Compare(va, vb), nil
}

// fullSemver rejects x/mod/semver's shorthands ("v1", "v1.2").
func fullSemver(v string) bool {
	if !semver.IsValid(v) {
		return false
	}
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	core, _, _ = strings.Cut(core, "+")
	return strings.Count(core, ".") == 2
}

// Go compares Go module versions as OSV records write them: semantic
// versions without the "v" (a leading "v" is accepted), pseudo-versions
// included, "+incompatible" ignored like any build metadata; the
// toolchain's versions as OSV writes them for stdlib ("1.21.0-0").
func Go(a, b string) (int, error) {
	return Semver(strings.TrimPrefix(a, "v"), strings.TrimPrefix(b, "v"))
}
