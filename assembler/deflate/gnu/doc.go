// Package gnu is an exact re-implementation of GNU gzip's own deflate
// encoder (gzip -1 .. -9; it does not use zlib): the stream between the
// 10-byte header and the 8-byte trailer of `gzip -c -n -LEVEL`, byte for
// byte, so that layers written by `tar | gzip` are re-encoded without
// running a gzip binary. The gzip framing is the caller's.
//
// # Which gzip
//
// The tests run against the gzip binary and require release 1.12
// (Debian 12's). The encoder's sources (deflate.c, trees.c, bits.c) of
// gzip 1.10 through 1.14 differ only in form (K&R to ANSI C, local to
// static, a rename), so the same bytes are expected from them, but only
// 1.12 is tested. gzip built for IBM Z's DFLTCC hardware writes other
// bytes.
//
// GNU gzip is zlib's ancestor and differs from it where it matters: its
// symbol buffer holds 32767 symbols (zlib's 16383) and, at levels 3..9,
// every 4096 symbols it ends the block early when the block looks
// compressible enough (ct_tally's heuristic); it slides the whole upper
// half of its 64 KiB window; it does not stop comparing at the input's
// end, so at the very end of the input the bytes after it (two zeros,
// then what the window held 32 KiB before) decide between equally good
// matches; it inserts strings near the end that zlib skips.
//
// # Reads
//
// gzip reads its input with read(2) and its choices depend on how much
// each read returns. Writer gives gzip's output for a regular file, where
// every read returns all it asks for until the end. A pipe may return
// less (tar | gzip); on real tars fed in tar's 10240-byte records gzip
// writes the same bytes as from a file (TestPipe), but a pipe that
// returns short reads at other points can in principle move a window
// slide and change the output.
//
// # Checkpoints
//
// As in assembler/deflate/zlib: a Writer with Options.CheckpointEvery
// records checkpoints at block boundaries, Resume continues from one and
// stops at the next, EncodeParallel splices segments encoded on several
// goroutines. The history a checkpoint needs is the whole window before
// the boundary (HistoryStart, at most 64 KiB): matches reach only 32506
// bytes back, but the bytes after the input's end that gzip compares are
// the input one half window before them, and a resumed encoder must have
// them when the end comes within its first window. The encoding is
// zlib's with the kind byte 'g':
//
//	+---------+------+-------+-------+----+-----+--------+---------+-----------+----------+--------+--------------------+
//	| version | 'g'  | level | flags | In | Out | Window | DataEnd | MatchLen  | MatchDist| nskips | nskips x (gap, len) |
//	| 1 byte  | byte | byte  | byte  |    |     |        | -Window |           |          |        | gap signed varint   |
//	+---------+------+-------+-------+----+-----+--------+---------+-----------+----------+--------+--------------------+
package gnu
