package codec

import (
	"runtime/debug"

	"github.com/chunkyard/chunkyard/assembler/deflate"
	"github.com/chunkyard/chunkyard/assembler/deflate/gnu"
	"github.com/chunkyard/chunkyard/assembler/deflate/zlib"
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

// pigzClass is the output class of EncoderPigz: pigz 2.x on the zlib
// releases assembler/deflate/zlib reproduces.
const pigzClass = "pigz-2 " + zlib.Class

// classAliases maps output classes recorded by earlier versions of this
// package to the class of this build's encoder that writes the same
// bytes: "gnu-gzip 1.12" was the class of the encoder helper that ran
// the host's gzip 1.12, whose output assembler/deflate/gnu reproduces.
var classAliases = map[[2]string]string{
	{EncoderGNUGzip, "gnu-gzip 1.12"}: gnu.Class,
}

// ownClass reports whether this build writes encoder's output class
// version itself, directly or by an alias.
func ownClass(encoder, version string) bool {
	v, ok := versionOf(encoder)
	if !ok {
		return false
	}
	if a, ok := classAliases[[2]string{encoder, version}]; ok {
		version = a
	}
	return v == version
}

// versionOf returns the output class this build has for an encoder, and
// false if it has none.
func versionOf(encoder string) (string, bool) {
	switch encoder {
	case EncoderStdlib:
		return deflate.Class, true
	case EncoderGNUGzip:
		return gnu.Class, true
	case EncoderZlib:
		return zlib.Class, true
	case EncoderPigz:
		return pigzClass, true
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
