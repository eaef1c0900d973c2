package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/internal/fsutil"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// uploads spools blob upload sessions to disk, one file per session
// (<dir>/<id>) with a small sidecar (<dir>/<id>.json) naming its repository,
// so a session survives a restart and is never held in memory.
//
// Sessions are not durable: what a PATCH wrote is not fsynced (no
// registry promises it; the spool file is fsynced when its blob is
// committed). After a power loss a session may have lost bytes, or hold
// zeros where they were; its size is then read from the file and the
// digest check at commit refuses whatever does not match. Every read of a
// spool file is bounded by the session's size, so the tail a failed append
// may leave is never read.
type uploads struct {
	fs  vfs.FS
	dir string
	ttl time.Duration
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // open in this process
}

// session is one upload. Its mutex serialises the requests that touch it.
type session struct {
	mu   sync.Mutex
	id   string
	repo string
	path string
	size int64
	// sha256 of the bytes so far, while they arrived in order in this
	// process; nil after a restart (then the file is hashed at commit).
	h    hash.Hash
	done bool
}

type sessionMeta struct {
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
}

func newUploads(fsys vfs.FS, dir string, ttl time.Duration, log *slog.Logger) (*uploads, error) {
	if err := fsys.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	return &uploads{fs: fsys, dir: dir, ttl: ttl, log: log, sessions: map[string]*session{}}, nil
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// validID accepts only ids this package makes, so an id is a safe file name.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

// start opens a new empty session for repo.
func (u *uploads) start(repo string) (*session, error) {
	s := &session{id: newID(), repo: repo, h: sha256.New()}
	s.path = filepath.Join(u.dir, s.id)
	meta, err := json.Marshal(sessionMeta{Repo: repo, Started: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	if err := u.writeFile(s.path+".json", meta); err != nil {
		return nil, fmt.Errorf("uploads: start: %w", err)
	}
	// The id is 128 random bits: Create never meets an existing file.
	f, err := u.fs.Create(s.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		u.fs.Remove(s.path + ".json")
		return nil, fmt.Errorf("uploads: start: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("uploads: start: %w", err)
	}
	u.mu.Lock()
	u.sessions[s.id] = s
	u.mu.Unlock()
	return s, nil
}

// get returns the session id of repo, locked; the caller unlocks it.
func (u *uploads) get(repo, id string) (*session, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrBlobUploadUnknown, id)
	}
	u.mu.Lock()
	s, ok := u.sessions[id]
	if !ok {
		// Opened before a restart: find it on disk.
		meta, err := fsutil.ReadFile(u.fs, filepath.Join(u.dir, id+".json"))
		var m sessionMeta
		if err == nil {
			err = json.Unmarshal(meta, &m)
		}
		fi, statErr := u.fs.Stat(filepath.Join(u.dir, id))
		if err != nil || statErr != nil {
			u.mu.Unlock()
			return nil, fmt.Errorf("%w: %s", ErrBlobUploadUnknown, id)
		}
		s = &session{id: id, repo: m.Repo, path: filepath.Join(u.dir, id), size: fi.Size()}
		u.sessions[id] = s
	}
	u.mu.Unlock()
	s.mu.Lock()
	if s.done || s.repo != repo {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrBlobUploadUnknown, id)
	}
	return s, nil
}

// append writes r at the end of the session. If offset >= 0 it must equal
// the current size (a Content-Range start), else ErrRangeInvalid.
func (u *uploads) append(ctx context.Context, s *session, offset int64, r io.Reader) error {
	if offset >= 0 && offset != s.size {
		return fmt.Errorf("%w: upload %s is at %d, chunk starts at %d", ErrRangeInvalid, s.id, s.size, offset)
	}
	// OpenReadWrite would create a missing file: a session whose file
	// is gone is unknown.
	if _, err := u.fs.Stat(s.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrBlobUploadUnknown, s.id)
		}
		return fmt.Errorf("uploads: %s: %w", s.id, err)
	}
	f, err := u.fs.OpenReadWrite(s.path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("uploads: %s: %w", s.id, err)
	}
	defer f.Close()
	var w io.Writer = io.NewOffsetWriter(f, s.size)
	if s.h != nil {
		// The hash first: a vfs.File's Write may change its argument.
		w = io.MultiWriter(s.h, w)
	}
	n, err := io.Copy(w, chunkstore.ContextReader(ctx, r))
	if err != nil {
		// The bytes written may be partial: the session stays at its
		// known size (reads are bounded by it; cut them off where the FS
		// can), and the running hash is forgotten.
		if _, terr := fsutil.Truncate(f, s.size); terr != nil {
			u.log.Warn("cutting a failed upload chunk", "id", s.id, "err", terr)
		}
		s.h = nil
		return fmt.Errorf("uploads: %s: %w", s.id, err)
	}
	s.size += n
	return nil
}

// finish removes the session's files; the session can no longer be used.
func (u *uploads) finish(s *session) {
	s.done = true
	u.mu.Lock()
	delete(u.sessions, s.id)
	u.mu.Unlock()
	for _, p := range []string{s.path, s.path + ".json"} {
		if err := u.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			u.log.Warn("removing upload file", "path", p, "err", err)
		}
	}
}

// writeFile writes a small file (not durably: see uploads).
func (u *uploads) writeFile(path string, data []byte) error {
	f, err := u.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		u.fs.Remove(path)
	}
	return err
}

// expire removes sessions untouched for longer than the TTL.
func (u *uploads) expire(now time.Time) {
	names, err := u.fs.List(u.dir)
	if err != nil {
		u.log.Warn("listing uploads", "err", err)
		return
	}
	// A session's spool file, its sidecar, or (after a crash cut its start
	// or its end short) either alone.
	ids := map[string]bool{}
	for _, name := range names {
		if id := strings.TrimSuffix(name, ".json"); validID(id) {
			ids[id] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		// Idle since the later write of the spool file and its sidecar:
		// an empty spool file has no write of its own on every FS.
		var last time.Time
		for _, name := range []string{id, id + ".json"} {
			if fi, err := u.fs.Stat(filepath.Join(u.dir, name)); err == nil && fi.ModTime().After(last) {
				last = fi.ModTime()
			}
		}
		if last.IsZero() || now.Sub(last) < u.ttl {
			continue
		}
		u.mu.Lock()
		s, open := u.sessions[id]
		u.mu.Unlock()
		if open {
			if !s.mu.TryLock() {
				continue // in use right now
			}
			u.finish(s)
			s.mu.Unlock()
		} else {
			u.finish(&session{id: id, path: filepath.Join(u.dir, id)})
		}
		u.log.Info("expired upload session", "id", id, "idle", now.Sub(last).Round(time.Second))
	}
}
