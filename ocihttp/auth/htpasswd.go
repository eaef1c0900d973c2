package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswd holds the users of an htpasswd file (bcrypt only) and a cache
// of recent successful checks, so that a client sending basic auth on
// every request pays bcrypt's cost once every few minutes, not each time.
type htpasswd struct {
	path string

	mu      sync.Mutex
	users   map[string][]byte
	ok      map[[32]byte]time.Time // sha256(user NUL password) -> expiry
	mtime   time.Time              // of the file when read
	checked time.Time              // when mtime was last compared
	onError func(error)            // a changed file that does not load
}

const (
	htpasswdCacheTTL  = 5 * time.Minute
	htpasswdCacheSize = 4096
)

// dummyHash is compared against for unknown users, so that the time taken
// does not tell whether a user exists.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("chunkyard-no-such-user"), bcrypt.DefaultCost)

func loadHtpasswd(path string) (*htpasswd, error) {
	h := &htpasswd{path: path}
	return h, h.reload()
}

// reload reads the file again; on error the old users stay.
func (h *htpasswd) reload() error {
	st, err := os.Stat(h.path)
	if err != nil {
		return fmt.Errorf("auth.htpasswd: %w", err)
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		return fmt.Errorf("auth.htpasswd: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return fmt.Errorf("auth.htpasswd %s:%d: want user:bcrypt-hash", h.path, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("auth.htpasswd %s:%d: user %q: only bcrypt hashes (htpasswd -B) are accepted: %v", h.path, n, user, err)
		}
		users[user] = []byte(hash)
	}
	if len(users) == 0 {
		return fmt.Errorf("auth.htpasswd %s: no users", h.path)
	}
	h.mu.Lock()
	h.users, h.ok, h.mtime = users, map[[32]byte]time.Time{}, st.ModTime()
	h.mu.Unlock()
	return nil
}

// reloadIfChanged reads the file again if its modification time changed
// (looked at most every 2 seconds): users added or removed take effect
// without a restart.
func (h *htpasswd) reloadIfChanged(now time.Time) {
	h.mu.Lock()
	if now.Sub(h.checked) < 2*time.Second {
		h.mu.Unlock()
		return
	}
	h.checked = now
	old := h.mtime
	h.mu.Unlock()
	st, err := os.Stat(h.path)
	if err != nil || st.ModTime().Equal(old) {
		return
	}
	if err := h.reload(); err != nil && h.onError != nil {
		h.onError(err)
	}
}

// verify reports whether user's password is pass.
func (h *htpasswd) verify(user, pass string) bool {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	now := time.Now()
	h.reloadIfChanged(now)
	h.mu.Lock()
	hash, known := h.users[user]
	exp, cached := h.ok[key]
	h.mu.Unlock()
	if known && cached && now.Before(exp) {
		return true
	}
	if !known {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pass))
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	h.mu.Lock()
	if len(h.ok) >= htpasswdCacheSize {
		clear(h.ok)
	}
	// The hash may have changed (reload) while we compared: cache only
	// against the one we checked.
	if cur := h.users[user]; subtle.ConstantTimeCompare(cur, hash) == 1 {
		h.ok[key] = now.Add(htpasswdCacheTTL)
	}
	h.mu.Unlock()
	return true
}
