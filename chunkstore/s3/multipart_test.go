package s3

import (
	"bytes"
	"context"
	"errors"
	"github.com/chunkyard/chunkyard/chunkstore/backendtest"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/chunkyard/chunkyard/chunkstore/s3/s3test"
)

// onlyReader hides every method of a reader but Read: Put must buffer parts.
type onlyReader struct{ r io.Reader }

func (r onlyReader) Read(p []byte) (int, error) { return r.r.Read(p) }

func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	opts := testOptions(t, srv, "mp")
	opts.PartSize = MinPartSize
	b := newBackend(t, opts)
	data := backendtest.RandomBytes(7, 12<<20) // three parts: 5, 5 and 2 MiB
	readers := map[string]func() io.Reader{
		"ReaderAt": func() io.Reader { return bytes.NewReader(data) },
		"Stream":   func() io.Reader { return onlyReader{bytes.NewReader(data)} },
	}
	for name, newReader := range readers {
		t.Run(name, func(t *testing.T) {
			obj := "multipart-" + strings.ToLower(name)
			if err := b.Put(ctx, obj, newReader(), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			head, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(b.prefix + obj)})
			if err != nil {
				t.Fatal(err)
			}
			if etag := aws.ToString(head.ETag); !strings.HasSuffix(strings.Trim(etag, `"`), "-3") {
				t.Errorf("ETag %s is not that of a 3-part upload", etag)
			}
			got, err := readAll(ctx, b, obj, 0, int64(len(data)))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("whole object: %d bytes, %v; equal %v", len(got), err, bytes.Equal(got, data))
			}
			off, n := int64(5<<20-100), int64(200) // across the first part boundary
			got, err = readAll(ctx, b, obj, off, n)
			if err != nil || !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("range across parts: %v", err)
			}
		})
	}
}

// cancelAfter cancels a context once n bytes have been read through it.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestMultipartFailure(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	opts := testOptions(t, srv, "mpfail")
	opts.PartSize = MinPartSize
	b := newBackend(t, opts)
	data := backendtest.RandomBytes(8, 12<<20)

	// The stream ends in the third part: the first two are uploaded.
	short := onlyReader{bytes.NewReader(data[:11<<20])}
	if err := b.Put(ctx, "short", short, int64(len(data))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Put of a short stream: %v, want io.ErrUnexpectedEOF", err)
	}
	// The caller gives up while the second part is read.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &cancelAfter{r: onlyReader{bytes.NewReader(data)}, n: 6 << 20, cancel: cancel}
	if err := b.Put(cctx, "cancelled", r, int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: %v, want context.Canceled", err)
	}

	for _, name := range []string{"short", "cancelled"} {
		if exists(t, b, name) {
			t.Errorf("failed Put left object %s", name)
		}
	}
	ups, err := b.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &b.bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups.Uploads {
		t.Errorf("multipart upload %s of %s not aborted", aws.ToString(u.UploadId), aws.ToString(u.Key))
	}
}
