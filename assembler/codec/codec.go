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
	// EncoderGNUGzip is GNU gzip's own deflate (tar | gzip -9), by
	// assembler/deflate/gnu: no gzip binary is run.
	EncoderGNUGzip = "gnu-gzip"
	// EncoderZlib is zlib's deflate (Python's gzip, zlib and tarfile
	// modules, Java's GZIPOutputStream as Jib writes it, Bazel rules), by
	// assembler/deflate/zlib; the gzip header is whatever the tool wrote.
	EncoderZlib = "zlib"
	// EncoderPigz is pigz: zlib's deflate cut into blocks, each ended by
	// flush markers, by default compressed on its own with the 32 KiB of
	// input before it as dictionary (assembler/deflate/zlib).
	EncoderPigz = "pigz"
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
	// BlockSize is pgzip's block size (its default is 1 MiB) or pigz's
	// (-b, default 128 KiB). Unlike the number of blocks in flight it
	// shapes the output.
	BlockSize int         `json:",omitempty"`
	Gzip      *GzipHeader `json:",omitempty"` // nil: the encoder's default header
	Zstd      *ZstdParams `json:",omitempty"` // nil: the encoder's defaults
	Pigz      *PigzParams `json:",omitempty"` // nil: pigz's defaults
}

// PigzParams are the pigz modes that shape its output beyond the level
// and block size.
type PigzParams struct {
	// Single is pigz with one compression thread (-p 1, or a one-core
	// host): one deflate stream across the blocks. It writes other bytes
	// than the default only at levels 1..3.
	Single bool `json:",omitempty"`
	// Independent is pigz -i: blocks without dictionaries.
	Independent bool `json:",omitempty"`
}

func (e Encoding) String() string {
	s := fmt.Sprintf("%s %s level %d (%s)", e.Format, e.Encoder, e.Level, e.Version)
	if e.BlockSize != 0 {
		s += fmt.Sprintf(" block %d", e.BlockSize)
	}
	if e.Pigz != nil && e.Pigz.Single {
		s += " single"
	}
	if e.Pigz != nil && e.Pigz.Independent {
		s += " independent"
	}
	return s
}

// WriterOptions configure NewWriterOptions beyond the Encoding. None
// of them changes the output.
type WriterOptions struct {
	// CheckpointSpacing, when positive, makes an encoder that can resume
	// (go-stdlib, zlib, gnu-gzip) record checkpoints at block boundaries
	// at least this many input bytes apart: Writer.Checkpoints after
	// Close, for NewPlan. Other encoders record none.
	CheckpointSpacing int64
	// Concurrency is how many goroutines an encoder that runs blocks in
	// parallel (pgzip, pigz, zstd) may use; 0: its default here.
	Concurrency int
}

// NewWriter returns a writer that compresses what is written to it into w
// exactly as enc says, with this build's encoder of enc's output class or
// with a loaded helper's (LoadHelpers). Close flushes and writes the
// trailer; it does not close w. It fails with ErrUnavailable if this build
// lacks enc's encoder or output class, and with ErrInvalid if enc is
// malformed.
func NewWriter(w io.Writer, enc Encoding) (io.WriteCloser, error) {
	return NewWriterOptions(w, enc, WriterOptions{})
}

// Writer is NewWriterOptions' writer.
type Writer struct {
	io.WriteCloser
	rec *recorder // nil: not recording
}

// Checkpoints returns, after a successful Close, the checkpoints the
// encode recorded (WriterOptions.CheckpointSpacing), nil if it recorded
// none (the encoder cannot resume, or the input was too short to cut).
func (w *Writer) Checkpoints() Checkpoints {
	if w.rec == nil {
		return nil
	}
	return w.rec.table
}

// NewWriterOptions is NewWriter with options.
func NewWriterOptions(w io.Writer, enc Encoding, o WriterOptions) (*Writer, error) {
	h, err := helperFor(enc)
	if err != nil {
		return nil, err
	}
	var zw io.WriteCloser
	var rec *recorder
	switch enc.Encoder {
	case EncoderStdlib, EncoderKlauspostGzip, EncoderPgzip, EncoderGNUGzip, EncoderZlib, EncoderPigz:
		if enc.Format != FormatGzip {
			return nil, fmt.Errorf("%w: %s writes gzip, not %q", ErrInvalid, enc.Encoder, enc.Format)
		}
		var gw *gzipWriter
		if gw, err = newGzipWriter(w, enc, h, o); err == nil {
			zw, rec = gw, gw.rec
		}
	case EncoderKlauspostZstd:
		if enc.Format != FormatZstd {
			return nil, fmt.Errorf("%w: %s writes zstd, not %q", ErrInvalid, enc.Encoder, enc.Format)
		}
		zw, err = newZstdWriter(w, enc, h, o.Concurrency)
	default:
		return nil, fmt.Errorf("%w: encoder %q", ErrUnavailable, enc.Encoder)
	}
	if err != nil {
		return nil, err
	}
	return &Writer{WriteCloser: zw, rec: rec}, nil
}
