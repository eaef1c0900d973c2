// Package bench owns operators' measurements of chunkyard on their own
// images. This first piece estimates storage without writing anything: an
// [Estimator] reads OCI image layouts (as written by `crane pull --format
// oci`, `oras` or `skopeo copy ... oci:DIR`) and tells how many bytes three
// stores would keep for them:
//
//   - plain: a plain registry (distribution): every unique blob, manifests
//     included, once, as pushed.
//   - chunkyard: what chunkyard's converter does. A gzip, zstd or tar blob
//     whose decompressed stream tar-splits, and whose compression an
//     encoder of this build reproduces (codec.Find), is stored as its header
//     stream and content stream cut into chunks; every other blob (configs,
//     GNU gzip layers, ...) as its own bytes cut into chunks ("opaque").
//   - ideal plain CDC: the decompressed tar of every layer, headers
//     included, cut into chunks as if any encoding could be reproduced;
//     other blobs opaque as above: what splitting headers from contents
//     gains over cutting the whole tar.
//
// Chunks are cut with the restic chunker at chunkstore's default sizes and
// a fixed polynomial, counted once per chunk ID (sha256) across everything
// added, and cost what chunkstore writes: the zstd frame at the store's
// chunk compression level (1 MiB window, no checksum) when it is smaller
// than the chunk, else the raw bytes, plus a 56-byte record header and a
// 52-byte trailer entry in the pack. Manifests are chunked like any other
// blob, as the registry does. Not counted: pack headers and footers (24
// bytes per 64 MiB pack), index entries, caches.
//
// Memory is bounded: blobs are streamed; the only growing state is one
// map per chunked store from chunk ID to stored size (about 80 bytes per
// distinct chunk) and the set of blob digests seen.
package bench
