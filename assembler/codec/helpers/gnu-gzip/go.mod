module github.com/chunkyard/chunkyard/assembler/codec/helpers/gnu-gzip

go 1.26.0

toolchain go1.26.8
