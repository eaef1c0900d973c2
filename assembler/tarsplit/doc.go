// Package tarsplit owns splitting a tar stream into a per-layer header
// stream and a content stream of concatenated file payloads, and zipping
// them back byte for byte.
//
// Split cuts a tar into two streams:
//
//   - the header stream: every byte of the tar that is not a file payload
//     (header blocks, PAX and GNU extension records, padding, the
//     end-of-archive blocks and anything after them), plus one small record
//     per archive entry giving its payload size and crc64. It is small,
//     compresses well and never dedups (mtimes change on every rebuild).
//   - the content stream: the file payloads, concatenated in archive order
//     with no padding, so identical files in different layers give identical
//     bytes for a content-defined chunker to dedup.
//
// Join zips them back: a header segment from the header stream, then
// exactly the entry's payload size from the content stream, and so on. Its
// output is the original tar, bit for bit, including hard links, symlinks,
// PAX and GNU long-name headers, GNU sparse files (their payload is the
// archived data fragments, not the expanded file) and garbage after the
// end-of-archive marker. JoinFrom starts mid-tar: it walks the header
// stream from its start and opens the content stream only where the tar
// from that offset on needs it, so that re-encoding a layer from a
// checkpoint in its middle reads no content before it.
//
// Every payload Join writes is checked against the crc64 Split recorded
// for it (tar-split's storage.CRCTable, as containers/storage keeps);
// JoinToUnchecked skips that for a caller that checks a digest over the
// whole output anyway.
//
// Parsing is github.com/vbatts/tar-split's fork of archive/tar. Join is
// this package's own loop over the header stream's records, the one
// JoinFrom needs to start mid-tar, rather than tar-split's
// asm.WriteOutputTarStream, which always checks the crc64s and cannot
// start mid-tar. Split does not use
// asm.NewInputTarStream: that hands file payloads to the FilePutter as
// the tar reader sees them, which for a sparse file is the expanded file
// (holes filled with zeros) rather than the bytes in the archive, so a
// sparse file would not round-trip (a 10 KiB GNU tar holding a 1 MiB
// sparse file joined back to 1 MiB). (Its JSON packer also refuses a tar
// that names the same path twice, and it buffers a chain of extension
// headers without limit.) Instead every byte the parser
// consumes passes through a tap that sends it to exactly one place, the
// current header segment or the content stream, so the two streams hold
// each input byte once, in order, by construction.
//
// The header stream encoding is this package's own (see format.go):
// binary, with raw segment bytes rather than tar-split's base64 JSON
// lines, and no names or positions; about 1.5x smaller than tar-split's
// JSON for the same tar, raw or gzipped.
//
// Memory is bounded whatever the input: payloads are streamed, a single
// header segment is capped at maxSegment (8 MiB; libarchive and Go cap one
// PAX or GNU long-name record at 1 MiB; a chain of them is refused past
// the cap), and the zero bytes a sparse file's holes expand to while the
// parser walks them are capped at maxSparseHoles (16 GiB) per stream.
//
// Callers store a split only after Verify has joined what was stored and
// found the original length and sha256 (Stats.TarDigest).
package tarsplit
