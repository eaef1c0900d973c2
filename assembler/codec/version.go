package codec

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// The klauspost modules this package is built against, which decide the
// output classes it reproduces. TestModuleVersions checks them against
// go.mod. At run time a binary's build information, where it lists
// dependencies (test binaries do not), must agree, or the klauspost
// encoders are unavailable: a recipe is never re-encoded by an encoder of
// another class.
const (
	compressPath    = "github.com/klauspost/compress"
	compressVersion = "v1.18.0"
	pgzipPath       = "github.com/klauspost/pgzip"
	pgzipVersion    = "v1.2.6"
)

// versionOf returns the output class this build has for an encoder, and
// false if it has none.
func versionOf(encoder string) (string, bool) {
	switch encoder {
	case EncoderStdlib:
		return goClass(runtime.Version()), true
	case EncoderKlauspostGzip, EncoderKlauspostZstd:
		if !linked(compressPath, compressVersion) {
			return "", false
		}
		return "klauspost/compress " + compressVersion, true
	case EncoderPgzip:
		if !linked(compressPath, compressVersion) || !linked(pgzipPath, pgzipVersion) {
			return "", false
		}
		return "klauspost/pgzip " + pgzipVersion + " klauspost/compress " + compressVersion, true
	}
	return "", false
}

// goClass names the standard library's deflate output class after the
// toolchain's minor release ("go1.26"): output changes, if at all, with a
// minor release. Anything that is not a plain release (devel, rc) is a
// class of its own.
func goClass(v string) string {
	parts := strings.Split(strings.TrimPrefix(v, "go"), ".")
	if !strings.HasPrefix(v, "go") || len(parts) < 2 || len(parts) > 3 {
		return v
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return v
		}
	}
	return "go" + parts[0] + "." + parts[1]
}

// linked reports whether the binary's build information agrees that module
// path is linked at version, unreplaced. Without dependency information it
// trusts the constants above.
func linked(path, version string) bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok || len(bi.Deps) == 0 {
		return true
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			return d.Version == version && d.Replace == nil
		}
	}
	return false
}
