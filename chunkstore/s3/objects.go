package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/chunkyard/chunkyard/chunkstore"
)

// ReadRange implements chunkstore.Backend with a ranged GetObject. The
// returned body is bounded by Options.RequestTimeout like the request.
func (b *Backend) ReadRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3 backend: read %s: %w", name, err)
	}
	key, err := b.key("read", name)
	if err != nil {
		return nil, err
	}
	if off < 0 || length < 0 {
		return nil, fmt.Errorf("s3 backend: read %s: invalid range [%d, +%d)", name, off, length)
	}
	if length == 0 { // HTTP has no empty range: check the object and the offset
		size, err := b.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		if off > size {
			return nil, rangeError(name, off, length, fmt.Sprint(size))
		}
		return http.NoBody, nil
	}
	last := off + length - 1
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &b.bucket,
		Key:    key,
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, last)),
	})
	switch {
	case isNotFound(err):
		return nil, fmt.Errorf("s3 backend: read %s: %w (%w)", name, chunkstore.ErrNotExist, err)
	case errorCode(err) == "InvalidRange":
		return nil, rangeError(name, off, length, "")
	case err != nil:
		return nil, fmt.Errorf("s3 backend: read %s: %w", name, err)
	}
	// S3 answers a range running past the end with what there is; a server
	// ignoring Range would send the whole object. Accept only the exact range.
	cr := aws.ToString(out.ContentRange)
	if aws.ToInt64(out.ContentLength) != length || !strings.HasPrefix(cr, fmt.Sprintf("bytes %d-%d/", off, last)) {
		_ = out.Body.Close()
		_, total, _ := strings.Cut(cr, "/")
		return nil, rangeError(name, off, length, total)
	}
	return out.Body, nil
}

// rangeError says a range is not inside an object of total bytes ("" or
// "*" when unknown).
func rangeError(name string, off, length int64, total string) error {
	obj := "the object"
	if total != "" && total != "*" {
		obj = "object of " + total + " bytes"
	}
	return fmt.Errorf("s3 backend: read %s: range [%d, +%d) outside %s: %w", name, off, length, obj, io.ErrUnexpectedEOF)
}

// Stat implements chunkstore.Stater with HeadObject.
func (b *Backend) Stat(ctx context.Context, name string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("s3 backend: stat %s: %w", name, err)
	}
	key, err := b.key("stat", name)
	if err != nil {
		return 0, err
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: key})
	switch {
	case isNotFound(err):
		return 0, fmt.Errorf("s3 backend: stat %s: %w (%w)", name, chunkstore.ErrNotExist, err)
	case err != nil:
		return 0, fmt.Errorf("s3 backend: stat %s: %w", name, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// Delete implements chunkstore.Backend. S3 reports no error for a missing
// key; a server that does gets nil too.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3 backend: delete %s: %w", name, err)
	}
	key, err := b.key("delete", name)
	if err != nil {
		return err
	}
	if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: key}); err != nil && !isNotFound(err) {
		return fmt.Errorf("s3 backend: delete %s: %w", name, err)
	}
	return nil
}

// List implements chunkstore.Backend, paging through ListObjectsV2 under
// the prefix. Objects come in key order; keys under the prefix that are not
// valid object names (deeper "directories", other tools' files) are skipped.
func (b *Backend) List(ctx context.Context, fn func(name string, size int64) error) error {
	p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &b.prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3 backend: list: %w", err)
		}
		for _, obj := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(obj.Key), b.prefix)
			if !ok || !chunkstore.ValidName(name) {
				continue
			}
			if err := fn(name, aws.ToInt64(obj.Size)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Usage counts the objects under the prefix and their bytes.
func (b *Backend) Usage(ctx context.Context) (objects int, bytes int64, err error) {
	err = b.List(ctx, func(_ string, size int64) error {
		objects++
		bytes += size
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return objects, bytes, nil
}

// isNotFound reports whether err says the object does not exist: NoSuchKey
// from GetObject, NotFound from HeadObject (which has no error body).
func isNotFound(err error) bool {
	code := errorCode(err)
	return code == "NoSuchKey" || code == "NotFound"
}

// errorCode returns the S3 error code in err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
