// Package codec owns identifying and reproducing the compression of layer
// blobs byte for byte.
//
// chunkyard stores a compressed layer as its uncompressed tar plus an
// [Encoding]: the encoder, its output class (Version) and every parameter
// that shapes the output. On pull, [NewWriter] turns the tar back into the
// exact original blob. [Find] discovers the Encoding at ingest by trial:
// it encodes the raw stream with each plausible candidate and compares the
// output with the original as it is produced, abandoning a candidate at
// its first differing byte.
//
// # What a gzip blob is made of
//
//	+----+----+----+-----+-------+-----+----+ [XLEN extra] [name\0] [comment\0] [CRC16]
//	| 1f | 8b | 08 | FLG | MTIME | XFL | OS |   FEXTRA       FNAME     FCOMMENT   FHCRC
//	+----+----+----+-----+-------+-----+----+
//	deflate stream (the encoder's own bytes)
//	CRC32(raw) ISIZE(len(raw) mod 2^32)                      little endian
//
// The header is reproduced from [GzipHeader], field by field, whatever
// encoder wrote it; the trailer follows from the raw bytes; only the
// deflate stream depends on the encoder, which is why Go-family writers
// (compress/gzip, klauspost gzip, pgzip) are identified by XFL, the one
// header byte they derive from the level (9: 2, 1: 4, other: 0).
//
// # What a zstd blob is made of
//
// One frame: magic 28 b5 2f fd, a frame header descriptor (single segment,
// checksum and dictionary flags, content size width), a window descriptor
// unless single segment, the declared content size if any, the blocks, and
// an xxhash64 checksum if flagged. klauspost's streaming encoder derives
// the window from the level (fastest 4 MiB, others 8 MiB), writes the
// checksum by default and declares no content size unless told; an input
// of at most one block becomes a single-segment frame.
//
// # Encoders of this package's own
//
// Besides the Go standard library (through assembler/deflate, which
// writes compress/flate's bytes) and the linked klauspost encoders, the
// zlib family is reproduced by assembler/deflate/zlib (class
// "zlib-1.2-1.3": Python's gzip and zlib, Java's GZIPOutputStream as Jib
// writes it, Bazel rules), pigz on top of it (its header, per-block
// dictionaries and flush markers; "-p 1" and the default differ at levels
// 1-3) and GNU gzip -1..-9 by assembler/deflate/gnu. No host tool is run:
// recipes stored as "gnu-gzip 1.12" by the helper that ran the host's
// gzip map to the built-in class, which writes the same bytes. [Find]
// narrows the candidates by the header each tool writes (OS byte, XFL,
// FNAME and MTIME conventions), so a blob costs a few trials at most.
//
// # Checkpoints and segments
//
// The trial that reproduces a blob can record [Checkpoints] every few MiB
// of raw input (FindOptions.CheckpointSpacing): the encoder's state at a
// block boundary, a few dozen bytes to a few KiB, the window not included
// (it is read again from the raw input). A [Plan] made from them encodes
// the blob in segments on several goroutines, spliced at their bit
// offsets ([Plan.Encode]), or starts at the segment holding an offset
// (ranges). A segment whose output does not come out as its checkpoint
// says fails with [ErrSegment]: encoding from the start is the way out.
//
// # Output classes
//
// Deflate and zstd encoders do not promise stable output across versions,
// so every Encoding names the output class it was found with: "go1.26" for
// the standard library (from the toolchain building this binary), an exact
// module version for klauspost encoders. [NewWriter] refuses an Encoding
// whose class this build does not have ([ErrUnavailable]); such recipes
// need a helper built with that class. Golden-hash tests pin every
// supported encoder and level, so a toolchain or dependency change that
// changes output fails a test rather than a pull.
package codec
