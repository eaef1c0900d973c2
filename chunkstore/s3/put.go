package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/chunkyard/chunkyard/chunkstore"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Put implements chunkstore.Backend. Objects up to PartSize go up with one
// PutObject, larger ones as a multipart upload that is aborted if it fails;
// S3 makes the object visible only when the upload completes.
func (b *Backend) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3 backend: put %s: %w", name, err)
	}
	key, err := b.key("put", name)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("s3 backend: put %s: negative size %d", name, size)
	}
	src, err := newSource(ctx, r, size)
	if err != nil {
		return fmt.Errorf("s3 backend: put %s: %w", name, err)
	}
	if size <= b.partSize {
		err = b.putObject(ctx, key, src, size)
	} else {
		err = b.putMultipart(ctx, key, src, size)
	}
	if err != nil {
		return fmt.Errorf("s3 backend: put %s: %w", name, err)
	}
	return nil
}

func (b *Backend) putObject(ctx context.Context, key *string, src *source, size int64) error {
	body, err := src.part(0, size)
	if err != nil {
		return err
	}
	_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           key,
		Body:          body,
		ContentLength: aws.Int64(size),
	})
	return err
}

func (b *Backend) putMultipart(ctx context.Context, key *string, src *source, size int64) (err error) {
	// S3 allows at most maxParts parts: grow them for huge objects.
	partSize := max(b.partSize, (size+maxParts-1)/maxParts)
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: key})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	defer func() {
		if err != nil {
			b.abort(ctx, key, up.UploadId, err)
		}
	}()
	parts, err := b.uploadParts(ctx, key, up.UploadId, src, size, partSize)
	if err != nil {
		return err
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &b.bucket,
		Key:             key,
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// uploadParts uploads src in parts of partSize, concurrency at a time. The
// first failure cancels the other parts and is returned.
func (b *Backend) uploadParts(ctx context.Context, key, uploadID *string, src *source, size, partSize int64) ([]types.CompletedPart, error) {
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, concurrency) // taken before reading a part: bounds buffered parts too
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		off := int64(i) * partSize
		length := min(partSize, size-off)
		body, err := src.part(off, length)
		if err != nil {
			cancel(err)
			break
		}
		num := aws.Int32(int32(i + 1))
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:        &b.bucket,
				Key:           key,
				UploadId:      uploadID,
				PartNumber:    num,
				Body:          body,
				ContentLength: aws.Int64(length),
			})
			if err != nil {
				cancel(fmt.Errorf("upload part %d of %d: %w", *num, n, err))
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: num}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err // the first part's failure, or the caller's ctx error
	}
	return parts, nil
}

// abort drops a failed multipart upload so that its parts do not linger.
func (b *Backend) abort(ctx context.Context, key, uploadID *string, cause error) {
	_, err := b.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
		Bucket:   &b.bucket,
		Key:      key,
		UploadId: uploadID,
	})
	if err != nil {
		b.log.Warn("aborting multipart upload failed; its parts stay until a lifecycle rule drops them",
			"key", *key, "upload_id", *uploadID, "err", err, "cause", cause)
		return
	}
	b.log.Debug("aborted multipart upload", "key", *key, "upload_id", *uploadID, "cause", cause)
}

// source hands out the bytes of a Put as seekable part bodies, which the
// SDK needs to sign requests and to retry them.
type source struct {
	ra   io.ReaderAt // when r is an io.ReaderAt and io.Seeker: parts are sections of it
	base int64       // r's offset when Put was called
	r    io.Reader   // otherwise: parts are read into memory, in order
}

func newSource(ctx context.Context, r io.Reader, size int64) (*source, error) {
	ra, okRA := r.(io.ReaderAt)
	sk, okSk := r.(io.Seeker)
	if !okRA || !okSk {
		return &source{r: chunkstore.ContextReader(ctx, r)}, nil
	}
	pos, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if _, err := sk.Seek(pos, io.SeekStart); err != nil {
		return nil, err
	}
	if end-pos < size {
		return nil, fmt.Errorf("reader holds %d bytes, want %d: %w", end-pos, size, io.ErrUnexpectedEOF)
	}
	return &source{ra: ra, base: pos}, nil
}

// part returns the length bytes at off. Without an io.ReaderAt, parts must
// be asked for in order.
func (s *source) part(off, length int64) (io.ReadSeeker, error) {
	if s.ra != nil {
		return io.NewSectionReader(s.ra, s.base+off, length), nil
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(s.r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read bytes [%d, +%d): %w", off, length, err)
	}
	return bytes.NewReader(buf), nil
}
