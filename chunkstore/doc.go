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
//	                (and sealed ones not handed to the backend yet)
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
// Every file of the store goes through Options.FS (a vfs.FS; the
// operating system's by default), so that tests can drop what was not
// fsynced, as a power loss does, or inject disk errors. The rules:
//
//   - A new directory (the store's, staging/, packs/ and its fan-out
//     directories) is made durable in its parent, up to the first that
//     existed. config.json is written to a temporary file, fsynced,
//     renamed into place, and the directory fsynced.
//   - A new pack is created in staging/ with its header, and staging/ is
//     fsynced before any of its records can be acknowledged. Write (and
//     Rewrite) returns only after an fsync of every pack it appended to,
//     so an acknowledged chunk survives a power loss; concurrent calls
//     share fsyncs.
//   - A failed write stops appends to its pack (the part of a record it may
//     have left past the last complete one cannot be cut off through
//     vfs.FS): the pack stays readable and the next Open seals it. A
//     failed fsync fails its pack for good: no acknowledgement rests on
//     data whose fsync failed, even if a later fsync succeeds.
//   - A pack is sealed when it reaches Options.PackSize (and at Close): the
//     trailer is appended and the pack fsynced. It then goes to the
//     Backend: a local one hard-links it into packs/, fsyncs that
//     directory, and only then removes it from staging/ and fsyncs
//     staging/, so that the pack is durable under one name at least at
//     every instant; for a remote one (S3) a background uploader Puts it
//     (retrying with backoff while the backend fails, so that no Write
//     waits for an upload), then removes it from staging/ likewise. Until
//     then the pack is read from staging/.
//   - A pack is deleted (after GC retired it) by removing it and fsyncing
//     its directory.
//
// On Open, every pack file left in staging/ was open, or sealed but not
// handed over, when the process stopped. Its records are scanned from the
// start, keeping each whose header is complete and whose CRCs match, up
// to the first bad or torn one. A pack whose trailer lists exactly the
// records that check out was sealed: it is handed over as it is. Any other
// is sealed: if something follows its last good record, the good records
// are first copied to staging/.NAME.recover, which is fsynced and renamed
// over the pack (staging/ fsynced), since the trailer must end the file;
// then the trailer is appended and fsynced. A staging pack without a
// valid record is deleted, and so is a .recover file a crash left. Sealed
// packs still in staging are handed over before Open returns (if the
// backend answers). If handing a sealed pack to the Backend fails, the
// pack stays readable in staging/ and the hand-over is retried at the next
// seal, at Close, and at the next Open.
//
// # Reads
//
// ReadChunk reads the record header with the stored bytes and checks them
// against the Location, the stored bytes' CRC, and the sha256 of the
// uncompressed bytes against the chunk ID; any mismatch wraps ErrCorrupt.
// A read marked SkipHash (ChunkRead) leaves out only the sha256, for a
// caller that checks a digest over everything it reads anyway.
package chunkstore
