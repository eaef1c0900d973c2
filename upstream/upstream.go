// Package upstream is the client of a plain OCI registry that chunkyard
// pulls through (serve --upstream): it fetches manifests and opens blobs
// over the distribution API with the registry's token or basic auth, and
// implements registry.Fallback. It checks what it can see of a response
// (status, the Docker-Content-Digest of a manifest); the registry service
// verifies every digest before it stores anything.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chunkyard/chunkyard/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options configure a Client.
type Options struct {
	// URL of the upstream registry: scheme and host (and port), e.g.
	// https://registry-1.docker.io or http://127.0.0.1:5001. A path is
	// not allowed: the distribution API lives at /v2/.
	URL string
	// Username and Password, if Username is set, are the basic
	// credentials the registry (or its token service) is given.
	// Otherwise Keychain resolves them (authn.DefaultKeychain, the Docker
	// config and its credential helpers, if nil); none found means
	// anonymous.
	Username, Password string
	Keychain           authn.Keychain
	// Transport is the HTTP transport (http.DefaultTransport if nil).
	Transport http.RoundTripper
	// MaxManifestSize bounds a manifest read (default 4 MiB).
	MaxManifestSize int64
	Logger          *slog.Logger
}

// Client talks to one upstream registry. It is safe for concurrent use.
type Client struct {
	reg    name.Registry
	scheme string
	hub    bool // Docker Hub: one-component names get library/
	auth   func(context.Context, name.Repository) (authn.Authenticator, error)
	base   http.RoundTripper
	maxMan int64
	log    *slog.Logger

	mu    sync.Mutex
	repos map[string]*repoClient // by upstream repository name
}

// repoClient is an authenticated transport for one repository (a bearer
// token's scope is a repository); made once, re-made after a failure.
type repoClient struct {
	once   sync.Once
	client *http.Client
	err    error
	made   time.Time
}

var _ registry.Fallback = (*Client)(nil)

// New returns a client of the registry at opts.URL. It does not contact it.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", opts.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("upstream %q: want http:// or https:// and a host", opts.URL)
	}
	if p := strings.Trim(u.Path, "/"); p != "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("upstream %q: give the registry's scheme and host only (no path, query or user)", opts.URL)
	}
	host := u.Host
	hub := false
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		// ggcr's name for Docker Hub: its keychain entry and the
		// library/ namespace of one-component names.
		host, hub = name.DefaultRegistry, true
	}
	var nopts []name.Option
	if u.Scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", opts.URL, err)
	}
	c := &Client{
		reg:    reg,
		scheme: u.Scheme,
		hub:    hub,
		base:   opts.Transport,
		maxMan: opts.MaxManifestSize,
		log:    opts.Logger,
		repos:  map[string]*repoClient{},
	}
	if c.base == nil {
		c.base = http.DefaultTransport
	}
	if c.maxMan <= 0 {
		c.maxMan = 4 << 20
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	switch {
	case opts.Username != "":
		basic := &authn.Basic{Username: opts.Username, Password: opts.Password}
		c.auth = func(context.Context, name.Repository) (authn.Authenticator, error) { return basic, nil }
	default:
		kc := opts.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		c.auth = func(ctx context.Context, r name.Repository) (authn.Authenticator, error) {
			return authn.Resolve(ctx, kc, r)
		}
	}
	return c, nil
}

// String names the upstream (for logs).
func (c *Client) String() string { return c.scheme + "://" + c.reg.RegistryStr() }

// Repository returns the upstream name of local repository repo: the same
// name, with library/ before a one-component name on Docker Hub.
func (c *Client) Repository(repo string) string { return c.reg.Repo(repo).RepositoryStr() }

// client returns the authenticated HTTP client of repo's scope.
func (c *Client) client(ctx context.Context, repo string) (*http.Client, error) {
	r := c.reg.Repo(repo)
	key := r.RepositoryStr()
	c.mu.Lock()
	rc := c.repos[key]
	if rc == nil || rc.err != nil && time.Since(rc.made) > time.Second {
		rc = &repoClient{}
		c.repos[key] = rc
	}
	c.mu.Unlock()
	rc.once.Do(func() {
		defer func() { rc.made = time.Now() }()
		auth, err := c.auth(ctx, r)
		if err != nil {
			rc.err = fmt.Errorf("credentials for %s: %w", r, err)
			return
		}
		t, err := transport.NewWithContext(ctx, c.reg, auth, c.base, []string{r.Scope(transport.PullScope)})
		if err != nil {
			rc.err = err
			return
		}
		rc.client = &http.Client{Transport: t}
	})
	if rc.err != nil {
		return nil, fmt.Errorf("%w: %s: %w", registry.ErrUpstream, c, rc.err)
	}
	return rc.client, nil
}

// manifestAccept is what a manifest request accepts: the types the
// registry stores.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	registry.MediaTypeDockerManifest, registry.MediaTypeDockerManifestList,
}, ", ")

// do sends method on path of repo's upstream API; the response is 200 or
// an error: registry.ErrManifestUnknown or ErrBlobUnknown (as notFound
// says) for a 404, or a 401 or 403 once authenticated, and
// registry.ErrUpstream for everything else.
func (c *Client) do(ctx context.Context, method, repo, kind, ref string, notFound error) (*http.Response, error) {
	hc, err := c.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: c.scheme, Host: c.reg.RegistryStr(), Path: "/v2/" + c.Repository(repo) + "/" + kind + "/" + ref}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", registry.ErrUpstream, err)
	}
	if kind == "manifests" {
		req.Header.Set("Accept", manifestAccept)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", registry.ErrUpstream, method, u.Redacted(), err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s not in %s on %s", notFound, ref, c.Repository(repo), c)
	case http.StatusUnauthorized, http.StatusForbidden:
		// With a token in hand: what Docker Hub answers for a
		// repository that does not exist, or is private to others.
		return nil, fmt.Errorf("%w: %s of %s on %s: access denied (%s; does it exist, are the credentials right?)",
			notFound, ref, c.Repository(repo), c, resp.Status)
	}
	terr := transport.CheckError(resp, http.StatusOK)
	return nil, fmt.Errorf("%w: %s %s: %w", registry.ErrUpstream, method, u.Redacted(), terr)
}

// StatManifest returns the digest, media type and size of manifest ref
// (a tag or a digest) of repo upstream, with a HEAD request.
func (c *Client) StatManifest(ctx context.Context, repo, ref string) (registry.Manifest, error) {
	resp, err := c.do(ctx, http.MethodHead, repo, "manifests", ref, registry.ErrManifestUnknown)
	if err != nil {
		return registry.Manifest{}, err
	}
	resp.Body.Close()
	m := registry.Manifest{MediaType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil || m.Size < 0 || m.MediaType == "" {
		// A registry that does not say: the content tells.
		full, err := c.Manifest(ctx, repo, ref)
		full.Content = nil
		return full, err
	}
	m.Digest = d
	return m, nil
}

// Manifest fetches manifest ref (a tag or a digest) of repo upstream. Its
// Digest is the content's (sha256, or the algorithm of a digest ref).
func (c *Client) Manifest(ctx context.Context, repo, ref string) (registry.Manifest, error) {
	resp, err := c.do(ctx, http.MethodGet, repo, "manifests", ref, registry.ErrManifestUnknown)
	if err != nil {
		return registry.Manifest{}, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > c.maxMan {
		return registry.Manifest{}, fmt.Errorf("%w: manifest %s of %s is %d bytes, limit %d", registry.ErrUpstream, ref, repo, resp.ContentLength, c.maxMan)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(resp.Body, c.maxMan+1)); err != nil {
		return registry.Manifest{}, fmt.Errorf("%w: reading manifest %s of %s: %w", registry.ErrUpstream, ref, repo, err)
	}
	if int64(buf.Len()) > c.maxMan {
		return registry.Manifest{}, fmt.Errorf("%w: manifest %s of %s is over %d bytes", registry.ErrUpstream, ref, repo, c.maxMan)
	}
	content := buf.Bytes()
	algo := digest.Canonical
	if d, err := digest.Parse(ref); err == nil && d.Algorithm().Available() {
		algo = d.Algorithm()
	}
	d := algo.FromBytes(content)
	if h, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil && h.Algorithm() == algo && h != d {
		return registry.Manifest{}, fmt.Errorf("%w: manifest %s of %s: the upstream says %s, the content is %s", registry.ErrUpstream, ref, repo, h, d)
	}
	mt := resp.Header.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	return registry.Manifest{Digest: d, MediaType: mt, Size: int64(len(content)), Content: content}, nil
}

// Blob opens blob d of repo upstream and returns its size (-1 if the
// upstream does not say). The reader is not verified: the caller checks
// the digest.
func (c *Client) Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	resp, err := c.do(ctx, http.MethodGet, repo, "blobs", d.String(), registry.ErrBlobUnknown)
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// Check pings the upstream (for a startup message); it returns an error
// if it cannot be reached.
func (c *Client) Check(ctx context.Context) error {
	if _, err := transport.Ping(ctx, c.reg, c.base); err != nil {
		return errors.Join(registry.ErrUpstream, err)
	}
	return nil
}
