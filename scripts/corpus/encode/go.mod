module github.com/chunkyard/chunkyard/scripts/corpus/encode

go 1.22
