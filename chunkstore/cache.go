package chunkstore

import (
	"container/list"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// readCache keeps recently read pack records (record header and stored
// bytes, as fetched from the backend) as files in a local directory,
// bounded in total size, evicting the least recently used. It is a cache,
// not storage: entries are verified like any read, a bad one is dropped,
// and nothing is fsynced. A nil *readCache caches nothing.
type readCache struct {
	dir string
	max int64
	log *slog.Logger

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cacheEntry, most recent at the front
	items map[string]*list.Element
}

type cacheEntry struct {
	key  string
	size int64
}

// openReadCache opens (creating) a cache in dir holding at most max bytes,
// keeping the entries already there, oldest first out.
func openReadCache(dir string, max int64, log *slog.Logger) (*readCache, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("read cache: %w", err)
	}
	c := &readCache{dir: dir, max: max, log: log, lru: list.New(), items: map[string]*list.Element{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read cache: %w", err)
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
		if _, _, ok := parseCacheKey(e.Name()); !ok {
			os.Remove(filepath.Join(dir, e.Name())) // a temp file or a stray
			continue
		}
		all = append(all, found{e.Name(), info.Size(), info.ModTime().UnixNano()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	for _, f := range all {
		c.items[f.key] = c.lru.PushBack(&cacheEntry{key: f.key, size: f.size})
		c.size += f.size
	}
	c.mu.Lock()
	c.evict()
	c.mu.Unlock()
	return c, nil
}

func cacheKey(loc Location) string { return loc.Pack + "-" + strconv.FormatInt(loc.Offset, 10) }

func parseCacheKey(name string) (pack string, off int64, ok bool) {
	pack, o, found := strings.Cut(name, "-")
	if !found || !validName(pack) {
		return "", 0, false
	}
	off, err := strconv.ParseInt(o, 10, 64)
	return pack, off, err == nil
}

func (c *readCache) get(loc Location) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	key := cacheKey(loc)
	c.mu.Lock()
	el, ok := c.items[key]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(c.dir, key))
	if err != nil {
		c.drop(loc)
		return nil, false
	}
	return b, true
}

func (c *readCache) put(loc Location, rec []byte) {
	if c == nil || int64(len(rec)) > c.max {
		return
	}
	key := cacheKey(loc)
	c.mu.Lock()
	_, ok := c.items[key]
	c.mu.Unlock()
	if ok {
		return
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err == nil {
		_, err = tmp.Write(rec)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(c.dir, key))
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		c.log.Warn("read cache write failed", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return // a concurrent put of the same record
	}
	c.items[key] = c.lru.PushFront(&cacheEntry{key: key, size: int64(len(rec))})
	c.size += int64(len(rec))
	c.evict()
}

func (c *readCache) drop(loc Location) {
	if c == nil {
		return
	}
	key := cacheKey(loc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
}

// evict removes least recently used entries until the cache fits; c.mu held.
func (c *readCache) evict() {
	for c.size > c.max && c.lru.Len() > 0 {
		c.remove(c.lru.Back())
	}
}

func (c *readCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.size -= e.size
	if err := os.Remove(filepath.Join(c.dir, e.key)); err != nil && !os.IsNotExist(err) {
		c.log.Warn("read cache remove failed", "err", err)
	}
}

// usage returns the cache's entry count and bytes.
func (c *readCache) usage() (int, int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}
