// Package zlib is an exact re-implementation of zlib's deflate encoder:
// the raw deflate stream it writes at levels 1..9 with windowBits 15,
// memLevel 8 and the default strategy, byte for byte. That is what
// Python's zlib and gzip modules, Java's Deflater and GZIPOutputStream
// (Jib), Bazel's rules and pigz write, so layers made by them can be
// stored as their uncompressed tar and re-encoded exactly on pull, without
// any host tool. The gzip or zlib framing around the stream is the
// caller's.
//
// # Which zlib
//
// The output class is "zlib 1.2.x/1.3.x": zlib 1.2.5, 1.2.8, 1.2.11,
// 1.2.12, 1.2.13 (Debian 12's, what Python and Java link there), 1.3 and
// 1.3.1, built from their release sources, write the same bytes at these
// settings on every input tried (deflate.c and trees.c changed between
// them only in ways that do not move a bit: the symbol buffer's layout,
// formatting, bounds). The tests run against the zlib that python3 links
// and fail if it is not one of these releases. zlib-ng (Fedora 40 and
// later ship it as their zlib) and Chromium's or Intel's forks write other
// bytes and are out of scope.
//
// # Input splitting
//
// zlib's output does not depend on how the input is split into deflate()
// calls, with one exception found by construction: when a call ends so
// that the window slides one step earlier than it would with more input
// at hand (strstart exactly 65274), a match exactly 32506 bytes back
// becomes unreachable. Writer buffers its input so that every read fills
// the window, which gives zlib's output for the whole input at once (and
// for any caller feeding at least 64 KiB at a time). TestSplitCorner pins
// the case.
//
// # pigz
//
// EncodePigz reproduces pigz: by default each 128 KiB block is compressed
// on its own, after deflateReset and deflateSetDictionary with the 32 KiB
// of input before it, and ends with a Z_BLOCK flush plus an empty stored
// block (odd pending bits) or empty fixed blocks (even) to reach a byte
// boundary; the last block is finished. pigz -p 1 (and pigz on a one-core
// machine) instead runs one stream across the blocks, which writes other
// bytes at levels 1..3; -i and -b are supported too.
//
// # Checkpoints
//
// A Writer with Options.CheckpointEvery records a Checkpoint at block
// boundaries (where the 16383-symbol buffer filled) at least that many
// input bytes apart. Resume continues the encode from one, given the
// 32 KiB of input before it (HistoryStart), and stops at the next one;
// EncodeParallel runs the segments on several goroutines and splices them
// at their bit offsets, giving the single-threaded output.
//
// Why 32 KiB is enough: a match reaches at most 32506 bytes back, and the
// hash chains that find matches are rebuilt by inserting the strings of
// those 32 KiB in order (at levels 4..9 zlib inserts every string; at
// levels 1..3 it skips the inside of long matches, which the checkpoint
// lists as Skips). Chain links to older strings only matter by being
// too far, which a missing link also is. The window's phase (the
// boundary's index in zlib's 64 KiB window) is kept, because it decides
// when the window slides, hence which blocks may still be stored. The
// bytes beyond the input's end that zlib's window may still hold never
// change its choices (it caps its match search at the input's end), so
// they are not rebuilt. Checkpoints are not taken within 32 KiB after a
// flush or a dictionary, where zlib's chains are not built by its steady
// loop.
//
// Checkpoint encoding (MarshalBinary), all integers unsigned LEB128
// varints unless noted:
//
//	+---------+------+-------+-------+----+-----+--------+---------+-----------+----------+--------+--------------------+
//	| version | 'z'  | level | flags | In | Out | Window | DataEnd | MatchLen  | MatchDist| nskips | nskips x (gap, len) |
//	| 1 byte  | byte | byte  | byte  |    |     |        | -Window |           |          |        | gap signed varint   |
//	+---------+------+-------+-------+----+-----+--------+---------+-----------+----------+--------+--------------------+
//
// flags bit 0 is MatchAvail. Skip gaps count from HistoryStart for the
// first skip and from the previous skip's end after. A checkpoint is
// about 20 bytes at levels 4..9 and a few KiB at levels 1..3 (a skip per
// long match in the last 32 KiB).
package zlib
