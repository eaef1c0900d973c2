// Package zhuff holds what zlib's and GNU gzip's deflate encoders share
// below the match finder: the LSB-first bit writer and the block writer
// (trees.c in both: symbol buffer, Huffman tree construction with its
// exact tie-breaking and length limiting, and the stored/fixed/dynamic
// choice). Both originals descend from the same trees.c, and at the levels
// the encoders here support they build identical trees from identical
// symbols; what differs between them (when a block is cut, how large the
// symbol buffer is) belongs to the callers in assembler/deflate/zlib and
// assembler/deflate/gnu.
package zhuff
