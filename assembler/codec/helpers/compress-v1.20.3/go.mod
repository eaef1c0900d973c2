module github.com/chunkyard/chunkyard/assembler/codec/helpers/compress-v1.20.3

go 1.26.0

toolchain go1.26.8

require (
	github.com/klauspost/compress v1.20.3
	github.com/klauspost/pgzip v1.2.6
)
