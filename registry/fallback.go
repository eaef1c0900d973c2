package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/opencontainers/go-digest"
)

// Fallback is where the registry gets the manifests and blobs a pull asks
// for and it does not have: an upstream registry (a pull-through cache)
// or a peer. Its errors wrap ErrManifestUnknown or ErrBlobUnknown when the
// other side does not have the content either, ErrUpstream when it could
// not be asked. The service verifies every digest itself and stores what
// it fetched through its normal write path (Options.Fallback).
type Fallback interface {
	// StatManifest returns the digest, media type and size of manifest
	// ref (a tag or a digest) of repo; Content is nil.
	StatManifest(ctx context.Context, repo, ref string) (Manifest, error)
	// Manifest fetches manifest ref (a tag or a digest) of repo.
	Manifest(ctx context.Context, repo, ref string) (Manifest, error)
	// Blob opens blob d of repo and returns its size (-1: not known
	// before the end).
	Blob(ctx context.Context, repo string, d digest.Digest) (io.ReadCloser, int64, error)
}

// ErrUpstream: the fallback (an upstream registry) could not be reached,
// refused, or sent content that does not match its digest. Nothing of it
// was stored.
var ErrUpstream = errors.New("the upstream registry failed to supply the content")

// maxFallbackManifests bounds the manifests fetched from the fallback and
// held in memory while their images are completed (each at most
// MaxManifestSize, most a few KiB); past it a manifest is served but not
// stored.
const maxFallbackManifests = 128

// Timeouts of the requests to the fallback: a tag's resolution (a pull
// waits for it, even when the tag is here), a manifest fetch, and a blob
// transfer that sends nothing for this long.
const (
	fallbackResolveTimeout  = 15 * time.Second
	fallbackManifestTimeout = time.Minute
	fallbackIdleTimeout     = time.Minute
)

// fallback is the pull-through state of a Service:
//
//   - A manifest pulled by digest that is not here is fetched (its digest
//     checked), served at once from memory, and completed in the
//     background: its blobs (an index's child manifests, recursively) are
//     fetched unless linked already, then the manifest is stored with
//     putManifest, as if pushed, and tagged with the tags it was pulled by.
//   - A tag is resolved upstream (a HEAD) when its last resolution is
//     older than TagTTL, else from that resolution; when the upstream
//     cannot be asked, from the local tag.
//   - A blob GET or HEAD that misses starts one fetch per repo and digest
//     (concurrent misses share it): the bytes go to an upload session
//     through the normal append path, readers follow the spool file as it
//     grows, and only a complete transfer that matches the digest is
//     committed (chunked, or left to the converter) and linked. A failed
//     or corrupt transfer stores nothing, and its readers get the error.
type fallback struct {
	src    Fallback
	tagTTL time.Duration
	ctx    context.Context // background fetches; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	tags      map[[2]string]resolvedTag
	manifests map[[2]string]*manifestJob // repo, digest
	blobs     map[[2]string]*blobFetch   // repo, digest
}

type resolvedTag struct {
	d    digest.Digest
	at   time.Time
	stat Manifest // what the fallback said (no content)
}

func newFallback(src Fallback, tagTTL time.Duration) *fallback {
	if src == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &fallback{
		src: src, tagTTL: tagTTL, ctx: ctx, cancel: cancel,
		tags:      map[[2]string]resolvedTag{},
		manifests: map[[2]string]*manifestJob{},
		blobs:     map[[2]string]*blobFetch{},
	}
}

// close stops the background fetches and waits for them.
func (f *fallback) close() {
	if f == nil {
		return
	}
	f.cancel()
	f.wg.Wait()
}

// ---- manifests ----

// manifestJob is a manifest fetched from the fallback and being completed.
type manifestJob struct {
	repo  string
	d     digest.Digest
	ready chan struct{} // closed once m or err is set
	done  chan struct{} // closed once stored or failed
	m     Manifest
	err   error
	tags  []string // to set once stored (under fallback.mu)
}

// fallbackManifest serves manifest ref of repo, from here or the fallback
// (see fallback). withContent: a GET, else a HEAD.
func (s *Service) fallbackManifest(ctx context.Context, repo, ref string, withContent bool) (Manifest, error) {
	f := s.fb
	d, err := digest.Parse(ref)
	tag := ""
	if err != nil {
		if d, err = s.resolve(repo, ref); err != nil && !errors.Is(err, ErrManifestUnknown) {
			return Manifest{}, err // an invalid reference, or the index failed
		}
		tag = ref
		local := d
		d, err = s.resolveUpstreamTag(ctx, repo, tag)
		if err != nil {
			if local == "" || errors.Is(err, context.Canceled) {
				return Manifest{}, err
			}
			if !errors.Is(err, ErrManifestUnknown) {
				s.log.Warn("upstream unavailable: serving the local tag", "repo", repo, "tag", tag, "err", err)
			}
			d = local // the local copy it is, then
		} else if local != d {
			if m, err := s.retag(ctx, repo, tag, d, withContent); err == nil {
				return m, nil
			} else if !errors.Is(err, ErrManifestUnknown) {
				return Manifest{}, err
			}
		}
	} else if err := checkDigest(d); err != nil {
		return Manifest{}, err
	}
	m, err := s.localManifest(ctx, repo, d.String(), withContent)
	if !errors.Is(err, ErrManifestUnknown) {
		return m, err
	}
	if !withContent {
		f.mu.Lock()
		job := f.manifests[[2]string{repo, string(d)}]
		rt := f.tags[[2]string{repo, tag}]
		f.mu.Unlock()
		if job == nil && tag != "" && rt.d == d && rt.stat.Digest == d {
			return rt.stat, nil // the tag's resolution said it all
		}
		if job == nil {
			// A HEAD needs no content: ask, do not fetch.
			m, err := f.src.StatManifest(ctx, repo, d.String())
			if err == nil && m.Digest != d {
				err = fmt.Errorf("%w: asked for manifest %s of %s, got %s", ErrUpstream, d, repo, m.Digest)
			}
			return m, err
		}
	}
	m, err = s.fallbackJob(ctx, repo, d, tag)
	if !withContent {
		m.Content = nil
	}
	return m, err
}

// localManifest is StatManifest or GetManifest without the fallback.
func (s *Service) localManifest(ctx context.Context, repo, ref string, withContent bool) (Manifest, error) {
	if withContent {
		return s.getManifest(ctx, repo, ref)
	}
	return s.statManifest(repo, ref)
}

// resolveUpstreamTag returns the digest tag of repo has upstream: from
// the last resolution if younger than the TTL, else asked.
func (s *Service) resolveUpstreamTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	f := s.fb
	key := [2]string{repo, tag}
	f.mu.Lock()
	rt, ok := f.tags[key]
	f.mu.Unlock()
	if ok && time.Since(rt.at) < f.tagTTL {
		return rt.d, nil
	}
	ctx, cancel := context.WithTimeout(ctx, fallbackResolveTimeout)
	defer cancel()
	m, err := f.src.StatManifest(ctx, repo, tag)
	if err != nil {
		return "", err
	}
	if err := checkDigest(m.Digest); err != nil {
		return "", fmt.Errorf("%w: tag %s of %s: %v", ErrUpstream, tag, repo, err)
	}
	f.mu.Lock()
	if len(f.tags) > 4*maxFallbackManifests {
		for k, v := range f.tags {
			if time.Since(v.at) >= f.tagTTL {
				delete(f.tags, k)
			}
		}
	}
	f.tags[key] = resolvedTag{m.Digest, time.Now(), m}
	f.mu.Unlock()
	return m.Digest, nil
}

// retag points repo's local tag at manifest d if repo has it here, and
// returns it; ErrManifestUnknown if not.
func (s *Service) retag(ctx context.Context, repo, tag string, d digest.Digest, withContent bool) (Manifest, error) {
	m, err := s.getManifest(ctx, repo, d.String())
	if err != nil {
		return Manifest{}, err
	}
	if _, _, err := s.PutManifest(ctx, repo, tag, m.MediaType, m.Content); err != nil {
		return Manifest{}, fmt.Errorf("registry: moving tag %s of %s to %s: %w", tag, repo, d, err)
	}
	if !withContent {
		m.Content = nil
	}
	return m, nil
}

// fallbackJob returns manifest d of repo from the fallback: from the job
// completing it if there is one, else fetched and a job started. tag, if
// not empty, is set once it is stored.
func (s *Service) fallbackJob(ctx context.Context, repo string, d digest.Digest, tag string) (Manifest, error) {
	job, err := s.manifestJob(ctx, repo, d, tag)
	if err != nil || job == nil {
		if err == nil { // too many in flight: serve, do not store
			s.log.Warn("pull-through: too many manifests being completed; serving without storing", "repo", repo, "digest", d)
			return s.fetchManifest(ctx, repo, d)
		}
		return Manifest{}, err
	}
	return job.m, nil
}

// manifestJob returns the job completing manifest d of repo, or fetches
// the manifest and starts one; nil if there are too many.
func (s *Service) manifestJob(ctx context.Context, repo string, d digest.Digest, tag string) (*manifestJob, error) {
	f := s.fb
	key := [2]string{repo, string(d)}
	f.mu.Lock()
	job := f.manifests[key]
	lead := job == nil && len(f.manifests) < maxFallbackManifests
	if lead {
		job = &manifestJob{repo: repo, d: d, ready: make(chan struct{}), done: make(chan struct{})}
		f.manifests[key] = job
	}
	if job != nil && tag != "" {
		job.tags = append(job.tags, tag)
	}
	f.mu.Unlock()
	if job == nil {
		return nil, nil
	}
	if lead {
		// Fetched on the background context: the job outlives this
		// request, and other requests wait for it.
		job.m, job.err = s.fetchManifest(f.ctx, repo, d)
		if job.err != nil {
			f.mu.Lock()
			delete(f.manifests, key)
			f.mu.Unlock()
			close(job.ready)
			close(job.done)
			return nil, job.err
		}
		close(job.ready)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			s.completeManifest(job)
		}()
	}
	select {
	case <-job.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return job, job.err
}

// fetchManifest fetches manifest d of repo from the fallback and checks
// it.
func (s *Service) fetchManifest(ctx context.Context, repo string, d digest.Digest) (Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, fallbackManifestTimeout)
	defer cancel()
	m, err := s.fb.src.Manifest(ctx, repo, d.String())
	if err != nil {
		return Manifest{}, err
	}
	if int64(len(m.Content)) > s.maxMan {
		return Manifest{}, fmt.Errorf("%w: manifest %s of %s is %d bytes, limit %d", ErrUpstream, d, repo, len(m.Content), s.maxMan)
	}
	if got := d.Algorithm().FromBytes(m.Content); got != d {
		return Manifest{}, fmt.Errorf("%w: manifest %s of %s: received content is %s", ErrUpstream, d, repo, got)
	}
	var body struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(m.Content, &body); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest %s of %s: %v", ErrUpstream, d, repo, err)
	}
	if body.MediaType != "" {
		m.MediaType = body.MediaType // truer than a Content-Type
	}
	m.Digest, m.Size = d, int64(len(m.Content))
	return m, nil
}

// completeManifest fetches what job's manifest references and is not
// here, then stores the manifest (and tags it); on failure it logs, and a
// later pull tries again.
func (s *Service) completeManifest(job *manifestJob) {
	f := s.fb
	key := [2]string{job.repo, string(job.d)}
	err := func() (err error) {
		defer guard(&err) // a failed index: the job ends with the error
		if err = s.completeRefs(job.repo, job.m); err == nil {
			_, _, err = s.PutManifest(f.ctx, job.repo, job.d.String(), job.m.MediaType, job.m.Content)
		}
		return err
	}()
	if err != nil {
		if f.ctx.Err() == nil {
			s.log.Warn("pull-through: manifest not stored", "repo", job.repo, "digest", job.d, "err", err)
		}
	} else {
		s.log.Info("pull-through: stored manifest", "repo", job.repo, "digest", job.d)
	}
	// The tags it was pulled by, also those added while they are set;
	// the job leaves the map once none is left.
	done := map[string]bool{}
	for {
		f.mu.Lock()
		var tag string
		for _, t := range job.tags {
			if !done[t] {
				tag = t
				break
			}
		}
		if tag == "" || err != nil {
			delete(f.manifests, key)
			f.mu.Unlock()
			break
		}
		done[tag] = true
		// Only the tag's latest resolution: a tag that moved upstream
		// meanwhile is not put back.
		latest := f.tags[[2]string{job.repo, tag}].d == job.d
		f.mu.Unlock()
		if !latest {
			continue
		}
		if _, _, err := s.PutManifest(f.ctx, job.repo, tag, job.m.MediaType, job.m.Content); err != nil {
			s.log.Warn("pull-through: tag not set", "repo", job.repo, "tag", tag, "digest", job.d, "err", err)
		}
	}
	close(job.done)
}

// completeRefs makes everything manifest m of repo names present in repo:
// child manifests (completed recursively) or blobs, fetched one by one.
func (s *Service) completeRefs(repo string, m Manifest) error {
	f := s.fb
	var body manifestBody
	if err := json.Unmarshal(m.Content, &body); err != nil {
		return fmt.Errorf("%w: %v", ErrManifestInvalid, err)
	}
	if isIndex(m.MediaType) {
		for _, desc := range body.Manifests {
			if err := checkDigest(desc.Digest); err != nil {
				return err
			}
			if _, err := s.graph.Manifest(repo, desc.Digest); err == nil {
				continue
			}
			child, err := s.manifestJob(f.ctx, repo, desc.Digest, "")
			if err == nil && child == nil {
				err = errors.New("too many manifests being completed")
			}
			if err != nil {
				return fmt.Errorf("child manifest %s: %w", desc.Digest, err)
			}
			select {
			case <-child.done:
			case <-f.ctx.Done():
				return f.ctx.Err()
			}
			if _, err := s.graph.Manifest(repo, desc.Digest); err != nil {
				return fmt.Errorf("child manifest %s was not stored: %w", desc.Digest, err)
			}
		}
		return nil
	}
	var descs []digest.Digest
	if body.Config != nil {
		descs = append(descs, body.Config.Digest)
	}
	for _, l := range body.Layers {
		if len(l.URLs) == 0 {
			descs = append(descs, l.Digest)
		}
	}
	for _, d := range descs {
		if err := checkDigest(d); err != nil {
			return err
		}
		if _, err := s.linkedBlob(repo, d); err == nil {
			continue
		}
		bf, err := s.blobFetch(repo, d)
		if err != nil {
			return err
		}
		if bf == nil {
			continue // stored meanwhile
		}
		select {
		case <-bf.done:
		case <-f.ctx.Done():
			return f.ctx.Err()
		}
		if bf.err != nil {
			return fmt.Errorf("blob %s: %w", d, bf.err)
		}
	}
	return nil
}

// ---- blobs ----

// blobFetch is one transfer of a blob from the fallback into an upload
// session; readers follow its spool file.
type blobFetch struct {
	repo string
	d    digest.Digest
	sess *session

	mu       sync.Mutex
	changed  chan struct{} // closed (and replaced) when the fields below change
	size     int64         // -1 until known
	written  int64
	verified bool  // all bytes in, digest matched
	err      error // the transfer or its commit failed
	finished bool  // the spool file is gone: committed or failed
	linked   bool  // stored here already for another repository: linked, not fetched

	sized chan struct{} // closed once size is known or err set
	done  chan struct{} // closed once committed (err nil) or failed
}

// blobFetch returns the running fetch of blob d into repo, or starts one;
// nil if the blob is linked into repo now (a fetch just finished).
func (s *Service) blobFetch(repo string, d digest.Digest) (*blobFetch, error) {
	f := s.fb
	key := [2]string{repo, string(d)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if bf := f.blobs[key]; bf != nil {
		return bf, nil
	}
	// A fetch is removed from the map once its blob is linked: look
	// again under the lock.
	if _, err := s.linkedBlob(repo, d); err == nil {
		return nil, nil
	}
	if f.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: shutting down", ErrUpstream)
	}
	sess, err := s.uploads.start(repo)
	if err != nil {
		return nil, err
	}
	bf := &blobFetch{repo: repo, d: d, sess: sess, size: -1,
		changed: make(chan struct{}), sized: make(chan struct{}), done: make(chan struct{})}
	f.blobs[key] = bf
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		s.runBlobFetch(bf)
	}()
	return bf, nil
}

// update changes bf's state under its lock and wakes its readers.
func (bf *blobFetch) update(fn func()) {
	bf.mu.Lock()
	defer bf.mu.Unlock()
	fn()
	close(bf.changed)
	bf.changed = make(chan struct{})
}

func (s *Service) runBlobFetch(bf *blobFetch) {
	f := s.fb
	defer s.pushes.begin()()
	// A failed index's panic becomes the error (guard): the readers
	// are told and the spool file removed.
	err := func() (err error) {
		defer guard(&err)
		if err = s.transfer(bf); err == nil && !bf.linked {
			err = s.commitFetched(bf)
		}
		return err
	}()
	switch {
	case errors.Is(err, ErrBlobUnknown):
		s.log.Debug("pull-through: blob not upstream", "repo", bf.repo, "digest", bf.d)
	case err != nil && f.ctx.Err() == nil:
		s.log.Warn("pull-through: blob not stored", "repo", bf.repo, "digest", bf.d, "err", err)
	}
	// Finished first: a reader that finds the fetch unfinished opens
	// the spool file before it is removed; then the fetch leaves the map,
	// after which its blob is linked (or a new fetch starts).
	bf.update(func() {
		bf.err = err
		bf.finished = true
	})
	bf.sess.mu.Lock()
	s.uploads.finish(bf.sess)
	bf.sess.mu.Unlock()
	f.mu.Lock()
	delete(f.blobs, [2]string{bf.repo, string(bf.d)})
	f.mu.Unlock()
	select {
	case <-bf.sized:
	default:
		close(bf.sized)
	}
	close(bf.done)
}

// transfer copies the blob from the fallback into bf's session and
// checks its size and digest.
func (s *Service) transfer(bf *blobFetch) error {
	f := s.fb
	// Cancelled when the fallback sends nothing for the idle timeout.
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	idle := time.AfterFunc(fallbackIdleTimeout, cancel)
	defer idle.Stop()
	r, size, err := f.src.Blob(ctx, bf.repo, bf.d)
	if err != nil {
		return err
	}
	defer r.Close()
	if b, err := s.graph.Blob(bf.d); err == nil && (size < 0 || size == b.Size) {
		// Stored here for another repository: the fallback has it for
		// this one, so link it rather than fetch it again.
		r.Close()
		if err := s.graph.LinkBlob(bf.repo, bf.d); err == nil {
			bf.update(func() { bf.size, bf.linked = b.Size, true })
			close(bf.sized)
			return nil
		}
		r, size, err = f.src.Blob(ctx, bf.repo, bf.d)
		if err != nil {
			return err
		}
		defer r.Close()
	}
	if size >= 0 {
		bf.update(func() { bf.size = size })
		close(bf.sized)
	}
	buf := make([]byte, 1<<20)
	sess := bf.sess
	sess.mu.Lock()
	defer sess.mu.Unlock()
	body := idleReader{r, idle}
	for {
		n, rerr := io.ReadFull(body, buf)
		if ctx.Err() != nil && f.ctx.Err() == nil {
			return fmt.Errorf("%w: blob %s of %s: nothing received for %s", ErrUpstream, bf.d, bf.repo, fallbackIdleTimeout)
		}
		if n > 0 {
			if size >= 0 && sess.size+int64(n) > size {
				return fmt.Errorf("%w: blob %s of %s: more than the %d bytes announced", ErrUpstream, bf.d, bf.repo, size)
			}
			if err := s.uploads.append(ctx, sess, sess.size, bytes.NewReader(buf[:n])); err != nil {
				return err
			}
			written := sess.size
			bf.update(func() { bf.written = written })
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: blob %s of %s: %w", ErrUpstream, bf.d, bf.repo, rerr)
		}
	}
	if size >= 0 && sess.size != size {
		return fmt.Errorf("%w: blob %s of %s: %d bytes of %d received", ErrUpstream, bf.d, bf.repo, sess.size, size)
	}
	got, err := sess.digest(s.fs, bf.d.Algorithm())
	if err != nil {
		return err
	}
	if got != bf.d {
		return fmt.Errorf("%w: blob %s of %s: received content is %s", ErrUpstream, bf.d, bf.repo, got)
	}
	total := sess.size
	bf.update(func() { bf.size, bf.verified = total, true })
	if size < 0 {
		close(bf.sized)
	}
	return nil
}

// commitFetched stores the verified blob of bf through the upload commit
// path (chunked, or pending for the converter) and links it.
func (s *Service) commitFetched(bf *blobFetch) (err error) {
	defer guard(&err)
	sess := bf.sess
	fl, err := s.fs.Open(sess.path)
	if err != nil {
		return fmt.Errorf("registry: fetched blob %s: %w", bf.d, err)
	}
	defer fl.Close()
	return s.commit(s.fb.ctx, bf.repo, bf.d, sess.size, sess.path, fl)
}

// fallbackStatBlob returns the size of blob d of repo, fetching it.
func (s *Service) fallbackStatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	bf, err := s.blobFetch(repo, d)
	if err != nil {
		return 0, err
	}
	if bf == nil { // linked meanwhile
		b, err := s.linkedBlob(repo, d)
		return b.Size, err
	}
	return bf.waitSize(ctx)
}

// waitSize returns the blob's size once the fetch knows it.
func (bf *blobFetch) waitSize(ctx context.Context) (int64, error) {
	select {
	case <-bf.sized:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	bf.mu.Lock()
	defer bf.mu.Unlock()
	if bf.size < 0 {
		return 0, bf.fetchErr()
	}
	return bf.size, nil
}

// fetchErr is the error of a fetch that ended without a size (under bf.mu).
func (bf *blobFetch) fetchErr() error {
	if bf.err == nil {
		return fmt.Errorf("%w: blob %s of %s: fetch ended", ErrUpstream, bf.d, bf.repo)
	}
	return bf.err
}

// fallbackOpenBlob opens length bytes from off of blob d of repo while it
// is fetched (or here, if it landed meanwhile).
func (s *Service) fallbackOpenBlob(ctx context.Context, repo string, d digest.Digest, off, length int64) (io.ReadCloser, int64, error) {
	bf, err := s.blobFetch(repo, d)
	if err != nil {
		return nil, 0, err
	}
	if bf == nil { // linked meanwhile
		return s.openLocalBlob(ctx, repo, d, off, length)
	}
	size, err := bf.waitSize(ctx)
	if err != nil {
		return nil, 0, err
	}
	if length < 0 {
		length = size - off
	}
	if off < 0 || length < 0 || off+length > size {
		return nil, size, fmt.Errorf("%w: %d+%d of %d bytes", ErrRangeInvalid, off, length, size)
	}
	bf.mu.Lock()
	var fl vfs.File
	if !bf.finished && !bf.linked {
		fl, err = s.fs.Open(bf.sess.path)
	}
	failed := bf.err != nil && !bf.verified
	ferr := bf.err
	bf.mu.Unlock()
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("registry: fetched blob %s: %w", d, err)
	case fl != nil:
		return &followReader{ctx: ctx, bf: bf, f: fl, off: off, end: off + length}, size, nil
	case failed:
		return nil, 0, ferr
	}
	// Linked, or stored since: the local copy.
	return s.openLocalBlob(ctx, repo, d, off, length)
}

// followReader reads a blob's spool file while its fetch writes it. It
// ends (io.EOF) only once the whole blob is in and matched its digest; a
// failed fetch is its error.
type followReader struct {
	ctx      context.Context
	bf       *blobFetch
	f        vfs.File
	off, end int64
}

func (r *followReader) Read(p []byte) (int, error) {
	for {
		r.bf.mu.Lock()
		written, verified, err, changed := r.bf.written, r.bf.verified, r.bf.err, r.bf.changed
		if err != nil && !verified {
			r.bf.mu.Unlock()
			return 0, err
		}
		r.bf.mu.Unlock()
		if r.off < min(written, r.end) {
			n := int(min(int64(len(p)), min(written, r.end)-r.off))
			n, err := r.f.ReadAt(p[:n], r.off)
			r.off += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		if r.off >= r.end && verified {
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *followReader) Close() error { return r.f.Close() }

// idleReader restarts its timer at every read that returns bytes.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(fallbackIdleTimeout)
	}
	return n, err
}
