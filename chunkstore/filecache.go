package chunkstore

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// FileCache is a directory of files bounded in total size, evicting the
// least recently used. It is a cache, not storage: a reader checks what it
// gets (chunk records carry CRCs and ids, layers their digest) and drops a
// bad entry. Entries committed by this process were written whole and
// checked by their writer (Open reports them verified); entries found in
// the directory at open are not trusted until a reader has checked them
// (MarkVerified). A nil *FileCache caches nothing. The store keeps pack
// records read from a remote backend in one; the assembler keeps encoded
// layers in another.
type FileCache struct {
	dir  string
	max  int64
	log  *slog.Logger
	sync bool // fsync entries before they are renamed in

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cacheEntry, most recent at the front
	items map[string]*list.Element
}

type cacheEntry struct {
	key      string
	size     int64
	verified bool // written or checked whole by this process
}

// OpenFileCache opens (creating) a cache in dir holding at most max bytes
// (0: an entry is dropped as soon as it is committed; its writer's readers
// keep reading it). Entries already there are kept, unverified, the most
// recently modified first, and temporary files of unfinished writes are
// removed.
func OpenFileCache(dir string, max int64, log *slog.Logger) (*FileCache, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("file cache: %w", err)
	}
	c := &FileCache{dir: dir, max: max, log: log, lru: list.New(), items: map[string]*list.Element{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("file cache: %w", err)
	}
	type found struct {
		key  string
		size int64
		mod  int64
	}
	var all []found
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		if !validCacheKey(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name())) // a temp file or a stray
			continue
		}
		all = append(all, found{e.Name(), info.Size(), info.ModTime().UnixNano()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range all {
		c.items[f.key] = c.lru.PushBack(&cacheEntry{key: f.key, size: f.size})
		c.size += f.size
	}
	c.evict()
	return c, nil
}

// validCacheKey accepts names of letters, digits, '-' and '_' only: safe
// file names that no temporary file (".tmp-*") can take.
func validCacheKey(key string) bool {
	if key == "" || len(key) > 200 {
		return false
	}
	return strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// SyncEntries makes Commit fsync each entry before renaming it in (for
// entries that are costly to make again, such as encoded layers).
func (c *FileCache) SyncEntries() {
	if c != nil {
		c.sync = true
	}
}

// CacheEntry is an open cache entry.
type CacheEntry struct {
	*os.File
	Size int64
	// Verified: the entry was committed by this process (its writer
	// checked it) or checked whole since (MarkVerified). An entry found on
	// disk at open is not, and must be checked before it is trusted.
	Verified bool
}

// Open returns entry key for reading.
func (c *FileCache) Open(key string) (CacheEntry, bool) {
	if c == nil || !validCacheKey(key) {
		return CacheEntry{}, false
	}
	c.mu.Lock()
	el, ok := c.items[key]
	var e cacheEntry
	if ok {
		c.lru.MoveToFront(el)
		e = *el.Value.(*cacheEntry)
	}
	c.mu.Unlock()
	if !ok {
		return CacheEntry{}, false
	}
	f, err := os.Open(filepath.Join(c.dir, key))
	if err != nil {
		c.Drop(key)
		return CacheEntry{}, false
	}
	return CacheEntry{File: f, Size: e.size, Verified: e.verified}, true
}

// MarkVerified records that entry key was checked whole (a reader hashed
// it against what it must be).
func (c *FileCache) MarkVerified(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*cacheEntry).verified = true
	}
}

// Get returns a whole (small) entry.
func (c *FileCache) Get(key string) ([]byte, bool) {
	e, ok := c.Open(key)
	if !ok {
		return nil, false
	}
	defer e.Close()
	b, err := io.ReadAll(e)
	if err != nil {
		c.Drop(key)
		return nil, false
	}
	return b, true
}

// Put stores data as entry key (unless it is there already).
func (c *FileCache) Put(key string, data []byte) {
	if c == nil || int64(len(data)) > c.max || c.has(key) {
		return
	}
	w, err := c.Create()
	if err == nil {
		_, err = w.Write(data)
		if err == nil {
			err = w.Commit(key)
		}
	}
	if err != nil {
		w.Abort()
		c.log.Warn("cache write failed", "dir", c.dir, "err", err)
	}
}

func (c *FileCache) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[key]
	return ok
}

// CacheWriter writes a new entry: Commit makes it visible under a key,
// Abort (safe after Commit) throws it away.
type CacheWriter struct {
	c    *FileCache
	f    *os.File
	n    int64
	done bool
}

// Create starts a new entry in a temporary file. A nil cache returns an
// error.
func (c *FileCache) Create() (*CacheWriter, error) {
	if c == nil {
		return nil, errors.New("file cache: none")
	}
	f, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("file cache: %w", err)
	}
	return &CacheWriter{c: c, f: f}, nil
}

func (w *CacheWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	return n, err
}

// Name is the path of the entry's temporary file (to open it for reading
// while it is written; the name changes at Commit).
func (w *CacheWriter) Name() string { return w.f.Name() }

// Commit closes the file and makes it entry key, evicting older entries
// to make room; the writer must have checked what it wrote. An entry
// larger than the whole cache is dropped.
func (w *CacheWriter) Commit(key string) error {
	if w.done {
		return errors.New("file cache: entry already finished")
	}
	w.done = true
	c := w.c
	if c.sync {
		if err := w.f.Sync(); err != nil {
			w.f.Close()
			os.Remove(w.f.Name())
			return fmt.Errorf("file cache: %w", err)
		}
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return err
	}
	if !validCacheKey(key) || w.n > c.max {
		os.Remove(w.f.Name())
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok { // a concurrent writer was first
		os.Remove(w.f.Name())
		return nil
	}
	if err := os.Rename(w.f.Name(), filepath.Join(c.dir, key)); err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("file cache: %w", err)
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key: key, size: w.n, verified: true})
	c.size += w.n
	c.evict()
	return nil
}

// Abort drops an unfinished entry.
func (w *CacheWriter) Abort() {
	if w == nil || w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// Drop removes entry key.
func (c *FileCache) Drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
}

// evict removes least recently used entries until the cache fits; c.mu held.
func (c *FileCache) evict() {
	for c.size > c.max && c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
}

// remove forgets an entry and deletes its file (a reader that has it open
// keeps reading it); c.mu held.
func (c *FileCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.size -= e.size
	if err := os.Remove(filepath.Join(c.dir, e.key)); err != nil && !os.IsNotExist(err) {
		c.log.Warn("cache remove failed", "dir", c.dir, "err", err)
	}
}

// Usage returns the number of entries and their bytes.
func (c *FileCache) Usage() (int, int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}
