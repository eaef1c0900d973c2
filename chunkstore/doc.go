// Package chunkstore owns chunking, chunk compression, packs and backends:
// it turns byte streams into content-defined chunks, stores them (zstd
// compressed when that helps) in pack files, and hands sealed packs to a
// Backend. It knows nothing of repositories, manifests or blob digests; its
// only names are chunk IDs (sha256 of the uncompressed chunk) and pack names.
//
// # Store layout
//
//	Dir/
//	  config.json   version, chunker polynomial and chunk sizes (written once, atomically)
//	  lock          flock(2)ed while a Store has the directory open
//	  staging/      open packs, one file per pack, named like the pack
//	  packs/ab/abcd...   sealed packs, when Options.Backend is nil (LocalBackend)
//
// # Chunking
//
// Write cuts a stream with the restic Rabin chunker, using the polynomial and
// sizes recorded in config.json at the store's creation (changing them breaks
// dedup, not data). Chunking, hashing and compression of one Write run as a
// small pipeline; appends to the open pack are serialized.
//
// # Pack format
//
// All integers are little endian. CRCs are CRC-32C (Castagnoli).
//
//	pack header (8 bytes)
//	+--------+--------+--------+--------+--------+--------+--------+--------+
//	|  'C'   |  'Y'   |  'P'   |  'K'   | ver=1  |    reserved (zero)       |
//	+--------+--------+--------+--------+--------+--------+--------+--------+
//
//	record = record header (56 bytes) + stored bytes, repeated
//	 off  len
//	   0    4  magic "CYRC"
//	   4    1  flags: bit 0 = stored bytes are one zstd frame; other bits zero
//	   5    3  reserved, zero
//	   8    4  rawLen: uncompressed length
//	  12    4  storedLen: length of the stored bytes (storedLen <= rawLen)
//	  16   32  chunk ID: sha256 of the uncompressed bytes
//	  48    4  crc32c of the stored bytes
//	  52    4  crc32c of header bytes [0, 52)
//	  56    …  stored bytes (storedLen)     <- Location.Offset points here
//
//	trailer (only in sealed packs): entries, then a fixed footer
//	entry (52 bytes), one per record, in pack order
//	   0   32  chunk ID
//	  32    8  offset of the stored bytes (uint64)
//	  40    4  rawLen
//	  44    4  storedLen
//	  48    1  flags (as in the record header)
//	  49    3  reserved, zero
//	footer (16 bytes), the last bytes of the pack
//	   0    4  length of the entries in bytes (a multiple of 52)
//	   4    4  crc32c of the entries
//	   8    8  end magic "CYPKTRL\x01"
//
// Records are contiguous: the first starts right after the pack header,
// each next one right after the previous stored bytes, and the entries right
// after the last record. A sealed pack is therefore fully described by its
// trailer, which fsck can use to rebuild the chunk index from packs alone;
// parsing checks that contiguity, every bound and the CRC, and never
// allocates more than the pack's size allows.
//
// # Durability and crashes
//
// An open pack lives in staging/ and is fsynced before Write returns, so an
// acknowledged chunk survives a crash. A pack is sealed when it reaches
// Options.PackSize (and at Close): the trailer is appended and fsynced, then
// the file is moved to the Backend and removed from staging/: at once by
// rename for a local backend; for a remote one (S3) by a background
// uploader that retries with backoff while the backend fails, so that no
// Write waits for an upload. Until then the pack is read from staging/. On Open, every file left in staging/
// is a pack that was open when the process died: its records are scanned
// from the start, keeping each whose header is complete and whose CRCs
// match, and the file is cut at the first bad or torn record; the trailer is
// then written and the pack sealed. A staging pack without a valid record is
// deleted. Sealed packs still in staging are handed over before Open
// returns (if the backend answers). If handing a sealed pack to the Backend fails, the pack stays
// readable in staging/ and the hand-over is retried at the next seal, at
// Close, and at the next Open.
//
// # Reads
//
// ReadChunk reads the record header with the stored bytes and checks them
// against the Location, the stored bytes' CRC, and the sha256 of the
// uncompressed bytes against the chunk ID; any mismatch wraps ErrCorrupt.
package chunkstore
