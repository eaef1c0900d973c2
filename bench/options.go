package bench

import (
	"fmt"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/klauspost/compress/zstd"
	"github.com/restic/chunker"
)

// DefaultPolynomial is the chunker polynomial estimates use. A real store
// picks a random one at creation; any irreducible polynomial of degree 53
// cuts as well on average, and a fixed one makes estimates repeatable.
const DefaultPolynomial = chunker.Pol(0x3DA3358B4DC173)

// Per-chunk bytes a pack spends besides the stored bytes: the record header
// (56 bytes) and the trailer entry (52 bytes); see chunkstore/doc.go.
const (
	RecordHeaderBytes = 56
	TrailerEntryBytes = 52
	ChunkOverhead     = RecordHeaderBytes + TrailerEntryBytes
)

// Options configure an Estimator. The zero value is chunkstore's defaults.
type Options struct {
	// Polynomial is the chunker polynomial (default DefaultPolynomial).
	Polynomial chunker.Pol
	// Chunk sizes as in chunkstore.Options (defaults 128 KiB min, 2^18
	// average, 2 MiB max).
	MinChunk, MaxChunk int
	AverageBits        int
	// Compression is chunkstore's zstd level for chunks (default: the
	// chunk store's default).
	Compression chunkstore.Compression
	// Workers is how many blobs are read at once (default 2). Each also
	// runs its decompression, the encoder trial and three chunkers in
	// goroutines of their own.
	Workers int
	// MaxInflated and MaxRatio bound a layer's decompressed size as the
	// registry's converter does (defaults 16 GiB and 100): past either the
	// blob counts as opaque.
	MaxInflated int64
	MaxRatio    float64
	// Details adds one BlobReport per blob to each LayoutReport.
	Details bool
}

func (o *Options) setDefaults() {
	if o.Polynomial == 0 {
		o.Polynomial = DefaultPolynomial
	}
	if o.MinChunk == 0 {
		o.MinChunk = chunkstore.DefaultMinChunk
	}
	if o.MaxChunk == 0 {
		o.MaxChunk = chunkstore.DefaultMaxChunk
	}
	if o.AverageBits == 0 {
		o.AverageBits = chunkstore.DefaultAverageBits
	}
	if o.Compression == "" {
		o.Compression, _ = chunkstore.ParseCompression("")
	}
	if o.Workers == 0 {
		o.Workers = 2
	}
	if o.MaxInflated == 0 {
		o.MaxInflated = 16 << 30
	}
	if o.MaxRatio == 0 {
		o.MaxRatio = 100
	}
}

func (o Options) validate() error {
	switch {
	case o.Polynomial.Deg() != 53 || !o.Polynomial.Irreducible():
		return fmt.Errorf("chunker polynomial %v is not an irreducible polynomial of degree 53", o.Polynomial)
	case o.MinChunk < 64:
		return fmt.Errorf("min chunk size %d is below the chunker window of 64 bytes", o.MinChunk)
	case o.MaxChunk < o.MinChunk:
		return fmt.Errorf("max chunk size %d is below min chunk size %d", o.MaxChunk, o.MinChunk)
	case o.MaxChunk > 256<<20:
		return fmt.Errorf("max chunk size %d exceeds 256 MiB", o.MaxChunk)
	case o.AverageBits < 6 || o.AverageBits > 30:
		return fmt.Errorf("average bits %d outside [6, 30]", o.AverageBits)
	case zstdLevel(o.Compression) == 0:
		return fmt.Errorf("unknown chunk compression %q", o.Compression)
	case o.Workers < 0:
		return fmt.Errorf("negative workers %d", o.Workers)
	case o.MaxInflated < 0 || o.MaxRatio < 0:
		return fmt.Errorf("negative inflate limit")
	}
	return nil
}

// zstdLevel is chunkstore's encoder level for c; 0 if c is unknown.
func zstdLevel(c chunkstore.Compression) zstd.EncoderLevel {
	switch c {
	case chunkstore.CompressFastest:
		return zstd.SpeedFastest
	case chunkstore.CompressDefault:
		return zstd.SpeedDefault
	case chunkstore.CompressBetter:
		return zstd.SpeedBetterCompression
	}
	return 0
}
