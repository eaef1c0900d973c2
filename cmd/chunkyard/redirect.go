package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/chunkyard/chunkyard/ocihttp/redirect"
)

// redirectFlags configure blob GET redirects to an encoded-layer cache
// bucket (package redirect).
type redirectFlags struct {
	bucket, prefix, baseURL string
	ttl                     time.Duration
	minSize                 int64
}

func addRedirectFlags(fs *flag.FlagSet, f *redirectFlags) {
	fs.StringVar(&f.bucket, "redirect-s3-bucket", "", "if set, blobs served whole are uploaded to this S3 bucket and later GETs of them are redirected (307) there; endpoint, region and credentials as for --s3-*")
	fs.StringVar(&f.prefix, "redirect-s3-prefix", "", "key prefix in --redirect-s3-bucket (objects are PREFIX/blobs/sha256/HEX)")
	fs.DurationVar(&f.ttl, "redirect-ttl", redirect.DefaultTTL, "expiry of the presigned URLs redirects go to")
	fs.StringVar(&f.baseURL, "redirect-base-url", "", "a CDN in front of --redirect-s3-bucket: redirect to BASE/KEY instead of a presigned URL")
	f.minSize = redirect.DefaultMinSize
	fs.Var((*byteSize)(&f.minSize), "redirect-min-size", "smaller blobs are always served directly")
}

// check validates the flags before anything is opened.
func (f redirectFlags) check() error {
	if f.bucket == "" && (f.baseURL != "" || f.prefix != "") {
		return fmt.Errorf("--redirect-base-url and --redirect-s3-prefix need --redirect-s3-bucket")
	}
	if f.ttl <= 0 || f.ttl > 7*24*time.Hour {
		return fmt.Errorf("--redirect-ttl %s: must be positive and at most 7 days (S3's limit)", f.ttl)
	}
	if f.baseURL != "" {
		if u, err := url.Parse(f.baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--redirect-base-url %q: want an http(s) URL", f.baseURL)
		}
	}
	return nil
}

// openRedirect returns the redirect cache, nil when --redirect-s3-bucket is
// not set.
func openRedirect(ctx context.Context, f redirectFlags, sf storeFlags, log *slog.Logger) (*redirect.Cache, error) {
	if f.bucket == "" {
		return nil, nil
	}
	if sf.storage == "s3" && f.bucket == sf.s3.Bucket && underPrefix(f.prefix, sf.s3.Prefix) {
		// The pack store's usage would count the cached blobs.
		return nil, fmt.Errorf("--redirect-s3-prefix %q is under the packs' --s3-prefix %q in the same bucket: use one outside it", f.prefix, sf.s3.Prefix)
	}
	o := sf.s3
	o.Bucket, o.Prefix = f.bucket, f.prefix
	c, err := redirect.New(ctx, redirect.Options{S3: o, TTL: f.ttl, BaseURL: f.baseURL, MinSize: max(f.minSize, 1), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--redirect-s3-bucket: %w", err)
	}
	return c, nil
}

// underPrefix says whether keys under prefix p are also under prefix
// outer (both taken as directories: "a" is "a/").
func underPrefix(p, outer string) bool {
	dir := func(s string) string {
		s = strings.Trim(s, "/")
		if s == "" {
			return ""
		}
		return s + "/"
	}
	return strings.HasPrefix(dir(p), dir(outer))
}
