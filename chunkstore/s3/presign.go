package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Key returns the object key of name (Options.Prefix + name), or an error if
// name is invalid.
func (b *Backend) Key(name string) (string, error) {
	k, err := b.key("key", name)
	if err != nil {
		return "", err
	}
	return *k, nil
}

// PresignGet returns a URL that lets anyone holding it GET the object name
// until ttl has passed.
func (b *Backend) PresignGet(ctx context.Context, name string, ttl time.Duration) (string, error) {
	key, err := b.key("presign", name)
	if err != nil {
		return "", err
	}
	req, err := s3.NewPresignClient(b.client).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: &b.bucket, Key: key}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3 backend: presign %s: %w", name, err)
	}
	return req.URL, nil
}
