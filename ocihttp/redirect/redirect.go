// Package redirect owns the encoded-layer cache bucket that blob GETs can be
// redirected to: blobs served whole are uploaded, verified against their
// digest, to BUCKET/PREFIX/blobs/sha256/<hex> in the background, and once an
// object is there a GET of that blob is answered with a 307 to a presigned
// URL of it (or to a CDN in front of the bucket).
//
// An object is only ever redirected to after it is known complete: the
// in-memory set is filled when an upload has finished (S3 shows an object
// only once it is whole) or when a HEAD finds it with the blob's size.
package redirect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/chunkstore/s3"
)

// Defaults of Options.
const (
	DefaultTTL     = 20 * time.Minute
	DefaultMinSize = 1 << 20
	// negativeTTL is how long a HEAD that found no object is believed.
	negativeTTL = 30 * time.Second
	headTimeout = 5 * time.Second
	maxMissing  = 10000 // negative notes kept
	uploads     = 2     // background uploads at once; more are dropped (retried on a later GET)
)

// Options configure New.
type Options struct {
	// S3 is the bucket and its client settings; its Prefix is the cache's
	// prefix (objects go under PREFIX/blobs/sha256/).
	S3 s3.Options
	// TTL is the presigned URLs' expiry (default 20 minutes).
	TTL time.Duration
	// BaseURL, if set, is a CDN in front of the bucket: redirects go to
	// BaseURL/<object key> instead of a presigned URL.
	BaseURL string
	// MinSize: smaller blobs are served directly (default 1 MiB; negative:
	// 0).
	MinSize int64
	Logger  *slog.Logger
}

// Cache is the encoded-layer cache bucket. It is safe for concurrent use.
type Cache struct {
	b       *s3.Backend
	ttl     time.Duration
	baseURL string
	minSize int64
	log     *slog.Logger
	bg      context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	slots   chan struct{}

	mu       sync.Mutex
	have     map[digest.Digest]bool
	missing  map[digest.Digest]time.Time // HEAD found nothing at this time
	inFlight map[digest.Digest]bool

	redirects, uploaded atomic.Int64
}

// New returns the cache on opts.S3.Bucket after checking the bucket is
// reachable.
func New(ctx context.Context, opts Options) (*Cache, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.MinSize == 0 {
		opts.MinSize = DefaultMinSize
	}
	opts.MinSize = max(opts.MinSize, 0)
	prefix := opts.S3.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	opts.S3.Prefix = prefix + "blobs/sha256/"
	opts.S3.Logger = opts.Logger
	b, err := s3.New(ctx, opts.S3)
	if err != nil {
		return nil, fmt.Errorf("redirect cache: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	return &Cache{
		b: b, ttl: opts.TTL, baseURL: strings.TrimSuffix(opts.BaseURL, "/"), minSize: opts.MinSize,
		log: opts.Logger.With("component", "redirect"), bg: bg, stop: stop, slots: make(chan struct{}, uploads),
		have: map[digest.Digest]bool{}, missing: map[digest.Digest]time.Time{}, inFlight: map[digest.Digest]bool{},
	}, nil
}

// Close cancels background uploads and waits for them to end.
func (c *Cache) Close() {
	c.stop()
	c.wg.Wait()
	r, u := c.Stats()
	c.log.Info("redirect cache closed", "redirects", r, "uploaded", u)
}

// Stats returns how many redirects were answered and blobs uploaded.
func (c *Cache) Stats() (redirects, uploaded int64) {
	return c.redirects.Load(), c.uploaded.Load()
}

// name is d's object name under the cache prefix, "" if d is not sha256.
func name(d digest.Digest) string {
	if d.Algorithm() != digest.SHA256 || d.Validate() != nil {
		return ""
	}
	return d.Encoded()
}

// Location returns where a GET of the blob d of size bytes may be
// redirected, ok false when it must be served directly (too small, not in
// the bucket, or the bucket cannot say). The caller has already checked
// that the client may read d.
func (c *Cache) Location(ctx context.Context, d digest.Digest, size int64) (string, bool) {
	n := name(d)
	if n == "" || size < c.minSize {
		return "", false
	}
	c.mu.Lock()
	have := c.have[d]
	t, miss := c.missing[d]
	c.mu.Unlock()
	if !have {
		if miss && time.Since(t) < negativeTTL {
			return "", false
		}
		hctx, cancel := context.WithTimeout(ctx, headTimeout)
		got, err := c.b.Stat(hctx, n)
		cancel()
		c.mu.Lock()
		if err == nil && got == size {
			c.have[d] = true
			delete(c.missing, d)
		} else { // absent, partial, or the bucket is down: ask again later
			c.markMissing(d)
		}
		have = c.have[d]
		c.mu.Unlock()
		if err != nil && !errors.Is(err, chunkstore.ErrNotExist) {
			c.log.Warn("cache bucket HEAD failed; serving directly", "digest", d, "err", err)
		}
		if !have {
			return "", false
		}
	}
	var url string
	if c.baseURL != "" {
		key, err := c.b.Key(n)
		if err != nil {
			return "", false
		}
		url = c.baseURL + "/" + key
	} else {
		var err error
		if url, err = c.b.PresignGet(ctx, n, c.ttl); err != nil {
			c.log.Warn("presign failed; serving directly", "digest", d, "err", err)
			return "", false
		}
	}
	c.redirects.Add(1)
	return url, true
}

// markMissing notes that a HEAD did not find d; c.mu is held. Old notes
// are dropped when there are many.
func (c *Cache) markMissing(d digest.Digest) {
	if len(c.missing) >= maxMissing {
		for k, t := range c.missing {
			if time.Since(t) >= negativeTTL {
				delete(c.missing, k)
			}
		}
		if len(c.missing) >= maxMissing {
			clear(c.missing)
		}
	}
	c.missing[d] = time.Now()
}

// Served tells the cache the blob d of size bytes was just served whole:
// unless it is known to be in the bucket or on its way, it is uploaded in
// the background, reading it again with open and checking its digest.
func (c *Cache) Served(d digest.Digest, size int64, open func(context.Context) (io.ReadCloser, error)) {
	n := name(d)
	if n == "" || size < c.minSize {
		return
	}
	c.mu.Lock()
	if c.have[d] || c.inFlight[d] {
		c.mu.Unlock()
		return
	}
	select {
	case c.slots <- struct{}{}:
	default: // busy: a later GET tries again
		c.mu.Unlock()
		return
	}
	c.inFlight[d] = true
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		err := c.upload(n, d, size, open)
		c.mu.Lock()
		delete(c.inFlight, d)
		if err == nil {
			c.have[d] = true // upload, then mark
			delete(c.missing, d)
		}
		c.mu.Unlock()
		<-c.slots
		if err != nil && c.bg.Err() == nil {
			c.log.Warn("upload to the cache bucket failed", "digest", d, "err", err)
		}
	}()
}

func (c *Cache) upload(n string, d digest.Digest, size int64, open func(context.Context) (io.ReadCloser, error)) error {
	if got, err := c.b.Stat(c.bg, n); err == nil && got == size {
		return nil // there already (another node, an earlier run)
	}
	rc, err := open(c.bg)
	if err != nil {
		return err
	}
	defer rc.Close()
	v := &verifier{r: rc, h: sha256.New(), want: d.Encoded(), left: size}
	if err := c.b.Put(c.bg, n, v, size); err != nil {
		return err
	}
	c.uploaded.Add(1)
	c.log.Debug("blob uploaded to the cache bucket", "digest", d, "size", size)
	return nil
}

// verifier passes size bytes of r on and, in the read that would complete
// them, withholds the data and fails if their digest is not want: the
// upload then fails before S3 has the whole object.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	want string
	left int64
}

var errMismatch = errors.New("blob bytes do not match the digest")

func (v *verifier) Read(p []byte) (int, error) {
	if v.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > v.left {
		p = p[:v.left]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.left -= int64(n)
	if v.left == 0 {
		if hex.EncodeToString(v.h.Sum(nil)) != v.want {
			return 0, errMismatch
		}
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
