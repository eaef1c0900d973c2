package codec

import (
	"errors"
	"fmt"
	"io"
)

// Format is a blob's compression format.
type Format string

// Formats.
const (
	FormatNone Format = "" // not compressed, or not recognised
	FormatGzip Format = "gzip"
	FormatZstd Format = "zstd"
)

// Encoders whose output this package reproduces.
const (
	EncoderStdlib        = "go-stdlib"       // compress/gzip (compress/flate)
	EncoderKlauspostGzip = "klauspost-gzip"  // github.com/klauspost/compress/gzip
	EncoderPgzip         = "klauspost-pgzip" // github.com/klauspost/pgzip
	EncoderKlauspostZstd = "klauspost-zstd"  // github.com/klauspost/compress/zstd
	// EncoderGNUGzip is GNU gzip (tar | gzip -9), through the helper
	// that runs the gzip binary: never built in.
	EncoderGNUGzip = "gnu-gzip"
)

// Errors. Each is wrapped with detail; test with errors.Is.
var (
	// ErrUnavailable: the Encoding names an encoder or output class that
	// this build cannot produce.
	ErrUnavailable = errors.New("codec: encoder not available in this build")
	// ErrInvalid: the Encoding is malformed (bad level, header, sizes).
	ErrInvalid = errors.New("codec: invalid encoding")
)

const (
	gzipMagic = "\x1f\x8b\x08" // ID1 ID2 CM=deflate
	zstdMagic = "\x28\xb5\x2f\xfd"
)

// Detect identifies a blob's format from its first bytes (4 are enough).
func Detect(prefix []byte) Format {
	switch {
	case hasPrefix(prefix, gzipMagic):
		return FormatGzip
	case hasPrefix(prefix, zstdMagic):
		return FormatZstd
	}
	return FormatNone
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// Encoding is everything needed to re-encode raw bytes into the exact
// original blob. It is stored in the index as part of a layer's recipe.
type Encoding struct {
	Format  Format
	Encoder string // one of the Encoder constants
	// Version is the output class the Encoding was found with; NewWriter
	// refuses an Encoding whose class this build does not have.
	Version string
	// Level is the encoder's level: for gzip encoders the compress/flate
	// level (-2 Huffman only, 0 stored, 1..9); for zstd the klauspost
	// EncoderLevel (1 fastest, 2 default, 3 better, 4 best).
	Level int
	// BlockSize is pgzip's block size (its default is 1 MiB). Unlike the
	// number of blocks in flight it shapes the output.
	BlockSize int         `json:",omitempty"`
	Gzip      *GzipHeader `json:",omitempty"` // nil: the encoder's default header
	Zstd      *ZstdParams `json:",omitempty"` // nil: the encoder's defaults
}

func (e Encoding) String() string {
	s := fmt.Sprintf("%s %s level %d (%s)", e.Format, e.Encoder, e.Level, e.Version)
	if e.BlockSize != 0 {
		s += fmt.Sprintf(" block %d", e.BlockSize)
	}
	return s
}

// NewWriter returns a writer that compresses what is written to it into w
// exactly as enc says, with this build's encoder of enc's output class or
// with a loaded helper's (LoadHelpers). Close flushes and writes the trailer; it does not
// close w. It fails with ErrUnavailable if this build lacks enc's encoder
// or output class, and with ErrInvalid if enc is malformed.
func NewWriter(w io.Writer, enc Encoding) (io.WriteCloser, error) {
	h, err := helperFor(enc)
	if err != nil {
		return nil, err
	}
	var zw io.WriteCloser
	switch enc.Encoder {
	case EncoderStdlib, EncoderKlauspostGzip, EncoderPgzip, EncoderGNUGzip:
		if enc.Format != FormatGzip {
			return nil, fmt.Errorf("%w: %s writes gzip, not %q", ErrInvalid, enc.Encoder, enc.Format)
		}
		zw, err = newGzipWriter(w, enc, h)
	default: // EncoderKlauspostZstd
		if enc.Format != FormatZstd {
			return nil, fmt.Errorf("%w: %s writes zstd, not %q", ErrInvalid, enc.Encoder, enc.Format)
		}
		zw, err = newZstdWriter(w, enc, h)
	}
	if err != nil {
		return nil, err
	}
	return zw, nil
}
