package assembler

import (
	"context"
	"errors"
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
	return a.OpenTarFrom(ctx, d, chunks, headerChunks, 0)
}

// OpenTarFrom is OpenTar from tar offset from on: the header stream is
// read from its start, the content stream only from where the tar from
// `from` needs it (tarsplit.JoinFrom).
func (a *Assembler) OpenTarFrom(ctx context.Context, d digest.Digest, chunks []refgraph.ChunkRef, headerChunks int, from int64) (io.ReadCloser, error) {
	return a.openTar(ctx, d, chunks, headerChunks, from, verifyChunks)
}

// openTar is OpenTarFrom, checked as v says: with verifyDigest (a whole
// layer's encode, from 0), neither the chunks' hashes nor the payloads'
// crc64s are checked.
func (a *Assembler) openTar(ctx context.Context, d digest.Digest, chunks []refgraph.ChunkRef, headerChunks int, from int64, v verifyMode) (io.ReadCloser, error) {
	if headerChunks < 0 || headerChunks > len(chunks) {
		return nil, fmt.Errorf("assembler: layer %s: %d header chunks of %d: %w", d, headerChunks, len(chunks), chunkstore.ErrCorrupt)
	}
	ctx, cancel := context.WithCancel(ctx)
	headers := a.openChunks(ctx, d, chunks[:headerChunks], 0, sumRaw(chunks[:headerChunks]), v)
	contentChunks := chunks[headerChunks:]
	contentSize := sumRaw(contentChunks)
	// The goroutine owns the chunk readers: it alone reads and closes them.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		if from == 0 {
			content := a.openChunks(ctx, d, contentChunks, 0, contentSize, v)
			if v == verifyDigest {
				_, err = tarsplit.JoinToUnchecked(pw, headers, content)
			} else {
				_, err = tarsplit.JoinTo(pw, headers, content)
			}
			content.Close()
		} else {
			var content *reader
			_, err = tarsplit.JoinFrom(pw, headers, from, func(off int64) (io.Reader, error) {
				if off > contentSize {
					return nil, fmt.Errorf("assembler: layer %s: content offset %d past its %d bytes: %w", d, off, contentSize, chunkstore.ErrCorrupt)
				}
				content = a.openChunks(ctx, d, contentChunks, off, contentSize-off, v)
				return content, nil
			})
			if content != nil {
				content.Close()
			}
		}
		headers.Close()
		pw.CloseWithError(err) // nil: EOF
	}()
	return &tarReader{PipeReader: pr, cancel: cancel, done: done}, nil
}

// tarReader is a layer's tar, joined by a goroutine; Close stops it and
// waits for it.
type tarReader struct {
	*io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
}

func (t *tarReader) Close() error {
	t.cancel()
	t.PipeReader.CloseWithError(errors.New("assembler: reader closed"))
	<-t.done
	return nil
}
