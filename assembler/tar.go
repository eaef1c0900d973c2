package assembler

import (
	"context"
	"fmt"
	"io"

	"github.com/chunkyard/chunkyard/assembler/tarsplit"
	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// OpenTar returns the uncompressed tar of a layer stored split: its header
// stream and content stream zipped back together. Each chunk is verified;
// the tar as a whole has no digest of its own here.
func (a *Assembler) OpenTar(ctx context.Context, d digest.Digest, chunks []refgraph.ChunkRef, headerChunks int) (io.ReadCloser, error) {
	if headerChunks < 0 || headerChunks > len(chunks) {
		return nil, fmt.Errorf("assembler: layer %s: %d header chunks of %d: %w", d, headerChunks, len(chunks), chunkstore.ErrCorrupt)
	}
	ctx, cancel := context.WithCancel(ctx)
	headers := a.openChunks(ctx, d, chunks[:headerChunks], 0, sumRaw(chunks[:headerChunks]))
	content := a.openChunks(ctx, d, chunks[headerChunks:], 0, sumRaw(chunks[headerChunks:]))
	tar := tarsplit.Join(headers, content)
	return &tarReader{ReadCloser: tar, parts: []io.Closer{tar, headers, content}, cancel: cancel}, nil
}

type tarReader struct {
	io.ReadCloser
	parts  []io.Closer // the joined tar first: closing it stops its goroutine
	cancel context.CancelFunc
}

func (t *tarReader) Close() error {
	t.cancel()
	for _, p := range t.parts {
		p.Close()
	}
	return nil
}
