// Package s3 owns the S3 pack backend: a chunkstore.Backend keeping packs as
// objects in an S3 (or S3-compatible: versitygw, MinIO, Ceph, R2) bucket.
//
// Object keys are Options.Prefix followed by the pack name. Packs up to
// Options.PartSize go up with one PutObject, larger ones as a multipart
// upload (two parts in flight), aborted when it fails; either way a reader
// sees the whole object or nothing. Every request attempt is bounded by
// Options.RequestTimeout and retried with exponential backoff (the SDK's
// standard retryer) on 5xx, throttling, connection errors and timeouts, up
// to Options.MaxAttempts attempts.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/logging"

	"github.com/chunkyard/chunkyard/chunkstore"
)

// Defaults and limits for Options.
const (
	DefaultPartSize       = 16 << 20
	DefaultRequestTimeout = 60 * time.Second
	DefaultMaxAttempts    = 5
	DefaultRegion         = "us-east-1" // when neither Options nor the AWS chain give one

	MinPartSize = 5 << 20 // S3's smallest part (all but the last)
	maxParts    = 10000   // S3's most parts per upload
	concurrency = 2       // parts in flight per multipart upload
)

// Options configure New. Credentials, and the region and endpoint when not
// set here, come from the standard AWS chain (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3, ~/.aws/config, ...).
type Options struct {
	Bucket string // required
	// Prefix is put before every object name; "/" is appended if missing.
	Prefix string
	// Endpoint is the service URL (http://127.0.0.1:7070) of an
	// S3-compatible server; empty means AWS (or AWS_ENDPOINT_URL_S3).
	Endpoint string
	Region   string
	// PathStyle addresses objects as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY; most S3-compatible servers need it.
	PathStyle bool
	// AccessKey and SecretKey, when both set, replace the AWS credential
	// chain with these static credentials.
	AccessKey, SecretKey string
	// PartSize is the multipart part size (default 16 MiB, at least 5 MiB);
	// larger objects are uploaded in parts, smaller ones in one request.
	PartSize int64
	// RequestTimeout bounds each attempt of each request, including reading
	// the body ReadRange returns (default 60 s).
	RequestTimeout time.Duration
	// MaxAttempts is the most attempts per request (default 5).
	MaxAttempts int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Backend is a chunkstore.Backend on an S3 bucket. It is safe for
// concurrent use.
type Backend struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int64
	log      *slog.Logger
	errors   *requestErrors
}

var (
	_ chunkstore.Backend = (*Backend)(nil)
	_ chunkstore.Stater  = (*Backend)(nil)
)

func (o *Options) setDefaults() error {
	switch {
	case o.Bucket == "":
		return errors.New("Options.Bucket is empty")
	case o.PartSize < 0, o.RequestTimeout < 0, o.MaxAttempts < 0:
		return errors.New("negative PartSize, RequestTimeout or MaxAttempts")
	case (o.AccessKey == "") != (o.SecretKey == ""):
		return errors.New("set both or neither of Options.AccessKey and SecretKey")
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < MinPartSize {
		return fmt.Errorf("PartSize %d is below the S3 minimum of %d", o.PartSize, MinPartSize)
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	return nil
}

// New returns a Backend on opts.Bucket after checking that the bucket is
// reachable with the configured credentials.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("s3 backend: %w", err)
	}
	log := opts.Logger.With("component", "s3", "bucket", opts.Bucket)
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				// Every request gets its MaxAttempts, however many failed
				// before: no client-wide retry quota.
				o.RateLimiter = ratelimit.None
			})
		}),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(opts.RequestTimeout)),
		// Checksums only where S3 requires them: S3-compatible servers
		// often send none, and the SDK would log about each response.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithLogger(slogAdapter{log}), // warnings only: no client log mode is set
	}
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	if opts.AccessKey != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3 backend: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	errs := &requestErrors{}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, errs.middleware)
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
	})
	b := &Backend{client: client, bucket: opts.Bucket, prefix: opts.Prefix, partSize: opts.PartSize, log: log, errors: errs}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(opts.Bucket)}); err != nil {
		why := "not reachable"
		switch errorCode(err) {
		case "NotFound", "NoSuchBucket":
			why = "does not exist"
		case "Forbidden", "AccessDenied":
			why = "access denied (check the credentials)"
		}
		return nil, fmt.Errorf("s3 backend: bucket %s (region %s, endpoint %q): %s: %w",
			opts.Bucket, cfg.Region, opts.Endpoint, why, err)
	}
	log.Debug("s3 backend ready", "prefix", opts.Prefix, "region", cfg.Region, "endpoint", opts.Endpoint)
	return b, nil
}

// key returns the object key of name, or an error if name is invalid.
func (b *Backend) key(op, name string) (*string, error) {
	if !chunkstore.ValidName(name) {
		return nil, fmt.Errorf("s3 backend: %s: invalid object name %q", op, name)
	}
	return aws.String(b.prefix + name), nil
}

// slogAdapter sends the SDK's log lines to slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	a.log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}
