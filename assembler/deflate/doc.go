// Package deflate owns an exact, resumable restatement of the deflate
// encoder of Go's compress/flate, as the toolchain pinned in go.mod
// (go1.26) writes it: for every level (-2 Huffman only, 0 stored, 1
// BestSpeed, 2..9 hash chains) the same tokens, the same block cuts, the
// same stored/fixed/dynamic choice and the same Huffman codes, hence the
// same bits. It writes raw deflate (RFC 1951); gzip framing belongs to
// assembler/codec.
//
// What this adds to compress/flate is checkpoints: an encode can record
// the encoder's state at block boundaries, and any segment between two
// boundaries can later be encoded on its own, so that N cores encode N
// segments of one layer and the outputs are spliced at bit offsets.
//
// # Encoding
//
// [Writer] takes Write, Flush and Close calls like compress/flate's Writer
// and writes the same bytes for the same calls. Its memory is fixed by the
// level (about 0.8 MB at levels 2..9, 0.5 MB at level 1), whatever the
// input size.
//
// compress/flate's output depends on how input arrives, not only on the
// input: at levels 2..9 the 64 KiB window slides when a Write finds the
// position past 65274, and a position encoded before a slide may use
// matches up to 32 KiB back while one encoded after it may not reach
// before the window's new start. Writes that leave the window one byte
// short of full move a slide one position earlier; a Flush encodes
// everything pending with shorter lookahead and leaves the last three
// positions unhashed. Writer follows compress/flate call for call, and
// the checkpoints record those events, so resumed segments follow them
// too.
//
// # Checkpoints and segments
//
// With [Options].CheckpointSpacing set, a Writer cuts its output into
// segments at block boundaries at least that many input bytes apart and
// hands each to [Options].OnCheckpoint when it is complete. The segments
// partition the stream: the first starts at input 0 and bit 0, each starts
// where the previous ends, the last ([Checkpoint].Final) ends the stream.
// A [Checkpoint] holds the segment's input range [In, End), its output bit
// range [Bit, EndBit) and the state at In:
//
//   - levels 2..9: where In falls in the sliding window (its phase: which
//     older positions are still in the window), and the history positions
//     that were never hashed: inside long matches at levels 2 and 3, the
//     last three before a flush at any level;
//   - level 1: the length of the previous block (the history it may match
//     into), and each match of the segment whose source lies before In;
//   - every level: the flushes inside the segment, and at levels 2..9 the
//     window slides that did not happen where a full window makes them.
//
// The window itself is not stored: resuming reads the HistoryLen bytes
// (at most 32 KiB) before In from the input. The hash chains are rebuilt
// from them (all history positions at levels 4..9). Lazy-match state need
// not be stored: at a block boundary it is either empty or recomputed by
// encoding the boundary position again. Neither are compress/flate's
// hash-offset rebasing (after 16 MiB of input) and level 1's offset
// shifting (after 2 GiB): both keep every usable match usable and drop
// only unusable ones, so they change no decision; this package moves its
// own positions at other points, with the same guarantee.
//
// [EncodeSegment] (from an io.ReaderAt) and [ResumeSegment] (from a
// stream) encode one segment: they read the history, then input from In,
// at most [Lookahead] (64 KiB) past End, or exactly to End for the final
// segment, and write output bits [Bit, EndBit) as whole bytes, the first
// byte's Bit%8 low bits and the last byte's bits past EndBit zero. A
// [Splicer] (or [Splice]) ORs such pieces together into the stream.
// [EncodeParallel] does all of it on several goroutines and streams the
// result in order. A segment whose output does not come out as long as its
// checkpoint says fails with [ErrMismatch]; that catches a checkpoint used
// with the wrong input most of the time, but it is no substitute for
// checking the digest of the result.
//
// # Checkpoint format
//
// MarshalBinary writes (all integers unsigned varints unless noted):
//
//	+---------+-------------+--------+----+--------+-----+------------+-------+------+
//	| version | level+2     | flags  | In | End-In | Bit | EndBit-Bit | phase | hist |
//	| byte: 1 | byte: 0..11 | bit 0: |    |        |     |            |       |      |
//	|         |             | Final  |    |        |     |            |       |      |
//	+---------+-------------+--------+----+--------+-----+------------+-------+------+
//	| nruns | nruns x (gap, length)          never-hashed history positions,   |
//	|       |                                 from In-hist up, gap from the     |
//	|       |                                 previous run's end                |
//	+-------+-------------------------------------------------------------------+
//	| nflushes | nflushes x delta             input offsets of flushes, from In |
//	| nslides  | nslides x delta              positions of off-grid slides      |
//	| nmatches | nmatches x (delta, distance) level 1's matches before In       |
//	+----------+----------------------------------------------------------------+
//
// phase is In's window index at levels 2..9 and the previous block's
// length at level 1; hist is the number of history bytes resuming reads.
// Deltas are from the previous entry of the same list, the first from 0.
// A typical level-6 checkpoint of a layer written in large pieces is about
// 25 bytes; level 1 adds about 3 bytes per match across In (a few hundred
// per checkpoint on text), levels 2 and 3 about 2.5 bytes per long match in
// the 32 KiB before In.
package deflate
