package crashtest

import (
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// crasher decides when the power fails. It counts the mutating operations
// made through a hookFS and, just before operation number at,
// takes the crash clone of the in-memory file system: everything fsynced
// so far, plus each unsynced block or directory entry with probability
// unsynced%. At the same instant it copies the model of acknowledged
// pushes and the remote object store, so the three agree.
//
// Its gate makes the clone atomic: every wrapped mutating operation holds
// it for reading while it runs, the clone holds it for writing. (MemFS's
// own clone lock is taken again inside some of its operations, which
// could deadlock against a concurrent CrashClone.)
type crasher struct {
	mem    *vfs.MemFS
	model  *model
	remote *remote // nil: none
	rng    *rand.Rand

	gate sync.RWMutex
	ops  atomic.Int64
	at   atomic.Int64 // 0: disarmed
	step atomic.Value // string: the workload step running

	// With a target phase, the power fails at the target's at-th
	// operation of that phase instead (see phaseOf). Set while the
	// service's background goroutines (Pebble's among them) run, so read
	// and written atomically.
	target    atomic.Pointer[phaseTarget]
	targetOps atomic.Int64

	mu       sync.Mutex
	unsynced int // percent of unsynced data the clone keeps
	fired    bool
	result   crashResult
}

type phaseTarget struct {
	phase string
	at    int64
}

// crashResult is the state the power loss left.
type crashResult struct {
	fs       *vfs.MemFS
	model    *model
	remote   *remote
	op       string // the operation it struck before
	step     string // the workload step running
	ops      int64  // mutating operations before it
	phase    string // what the operation was part of: "pack upload", "repack", "pack deletion", or ""
	unsynced int    // percent of unsynced data kept
}

// phaseOf names what an operation during step is part of, for the counts:
// putting says a remote pack upload is in flight, deleted that the remote
// store deleted a pack just before (the operation is then the index's
// record of it).
func phaseOf(step, op, path string, putting, deleted bool) string {
	staging, packs := storeDir+"/staging/", storeDir+"/packs"
	switch {
	case deleted, op == "remove" && strings.HasPrefix(path, packs):
		return "pack deletion"
	case putting,
		strings.HasPrefix(path, packs),
		op == "remove" && strings.HasPrefix(path, staging) && step != "recovery":
		return "pack upload"
	case step == "gc" && strings.HasPrefix(path, staging):
		return "repack"
	}
	return ""
}

func newCrasher(mem *vfs.MemFS, m *model, rem *remote, rng *rand.Rand) *crasher {
	c := &crasher{mem: mem, model: m, remote: rem, rng: rng}
	c.step.Store("open")
	return c
}

// arm makes the power fail in n more mutating operations, with unsynced
// percent of the unsynced data surviving.
func (c *crasher) arm(n int64, unsynced int) {
	c.mu.Lock()
	c.unsynced = unsynced
	c.mu.Unlock()
	c.at.Store(c.ops.Load() + n)
}

// armPhase makes the power fail at the n-th next operation of phase.
func (c *crasher) armPhase(phase string, n int64, unsynced int) {
	c.mu.Lock()
	c.unsynced = unsynced
	c.mu.Unlock()
	c.target.Store(nil)
	c.targetOps.Store(0)
	c.target.Store(&phaseTarget{phase, n})
}

func (c *crasher) hasFired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fired
}

// fire takes the crash clone, once; op and path name what it struck
// before, and phase what that was part of.
func (c *crasher) fire(op, path, phase string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fired {
		return
	}
	c.gate.Lock()
	defer c.gate.Unlock()
	c.model.mu.Lock()
	defer c.model.mu.Unlock()
	c.fired = true
	clone := c.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: c.unsynced, RNG: c.rng})
	if c.unsynced > 0 {
		// The index keeps exactly what Pebble synced. MemFS keeps or drops
		// each unsynced directory entry independently, and in that model
		// Pebble's MANIFEST rotation (create the MANIFEST, create the new
		// marker naming it, then fsync the directory) can leave a marker
		// naming a MANIFEST that is not there: a window in Pebble, not
		// here, which file systems that keep directory operations in order
		// (ext4, xfs) do not open.
		if err := replaceTree(clone, c.mem.CrashClone(vfs.CrashCloneCfg{}), indexDir); err != nil {
			panic(err)
		}
	}
	res := crashResult{fs: clone, model: c.model.clone(), op: op + " " + path, step: c.step.Load().(string),
		ops: c.ops.Load(), unsynced: c.unsynced, phase: phase}
	if c.remote != nil {
		res.remote = c.remote.snapshot()
	}
	c.result = res
}

// enter counts a mutating operation, fires if it is the one, and holds
// the gate until the returned func is called. It injects no error.
func (c *crasher) enter(op string, path string) (error, func()) {
	n := c.ops.Add(1)
	phase := phaseOf(c.step.Load().(string), op, path,
		c.remote != nil && c.remote.puts.Load() > 0, c.remote != nil && c.remote.deleted.Swap(false))
	if t := c.target.Load(); n == c.at.Load() || t != nil && phase == t.phase && c.targetOps.Add(1) == t.at {
		c.fire(op, path, phase)
	}
	c.gate.RLock()
	return nil, c.gate.RUnlock
}

// hook sees every operation that changes a hookFS before it runs. It
// returns the error to inject instead (a write then writes only part of
// its bytes first), and a func to call once the operation is done.
type hook interface {
	enter(op, path string) (inject error, done func())
}

// hookFS wraps a file system with a hook (a crasher, or a faulter that
// injects errors). Reads pass through untouched.
type hookFS struct {
	vfs.FS
	h hook
}

func (fs hookFS) Unwrap() vfs.FS { return fs.FS }

func (fs hookFS) wrap(f vfs.File, err error, path string) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &hookFile{File: f, h: fs.h, path: path}, nil
}

// do runs a path operation under the hook.
func (fs hookFS) do(op, path string, fn func() error) error {
	inject, done := fs.h.enter(op, path)
	defer done()
	if inject != nil {
		return inject
	}
	return fn()
}

func (fs hookFS) Create(name string, cat vfs.DiskWriteCategory) (f vfs.File, err error) {
	err = fs.do("create", name, func() error { f, err = fs.FS.Create(name, cat); return err })
	return fs.wrap(f, err, name)
}

func (fs hookFS) Link(oldname, newname string) error {
	return fs.do("link", newname, func() error { return fs.FS.Link(oldname, newname) })
}

func (fs hookFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	return fs.wrap(f, err, name)
}

func (fs hookFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (f vfs.File, err error) {
	err = fs.do("open-rw", name, func() error { f, err = fs.FS.OpenReadWrite(name, cat, opts...); return err })
	return fs.wrap(f, err, name)
}

func (fs hookFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.wrap(f, err, name)
}

func (fs hookFS) Remove(name string) error {
	return fs.do("remove", name, func() error { return fs.FS.Remove(name) })
}

func (fs hookFS) RemoveAll(name string) error {
	return fs.do("remove-all", name, func() error { return fs.FS.RemoveAll(name) })
}

func (fs hookFS) Rename(oldname, newname string) error {
	return fs.do("rename", newname, func() error { return fs.FS.Rename(oldname, newname) })
}

func (fs hookFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (f vfs.File, err error) {
	err = fs.do("reuse", newname, func() error { f, err = fs.FS.ReuseForWrite(oldname, newname, cat); return err })
	return fs.wrap(f, err, newname)
}

func (fs hookFS) MkdirAll(dir string, perm os.FileMode) error {
	return fs.do("mkdir", dir, func() error { return fs.FS.MkdirAll(dir, perm) })
}

func (fs hookFS) Lock(name string) (c io.Closer, err error) {
	err = fs.do("lock", name, func() error { c, err = fs.FS.Lock(name); return err })
	return c, err
}

type hookFile struct {
	vfs.File
	h    hook
	path string
}

// write runs a write under the hook; an injected error comes after part
// of the bytes (half of them, at least one) was written, as a disk that
// fills up mid-write does.
func (f *hookFile) write(p []byte, fn func([]byte) (int, error)) (int, error) {
	inject, done := f.h.enter("write", f.path)
	defer done()
	if inject == nil {
		return fn(p)
	}
	n, err := fn(p[:len(p)/2])
	if err == nil {
		err = inject
	}
	return n, err
}

func (f *hookFile) Write(p []byte) (int, error) { return f.write(p, f.File.Write) }

func (f *hookFile) WriteAt(p []byte, off int64) (int, error) {
	return f.write(p, func(b []byte) (int, error) { return f.File.WriteAt(b, off) })
}

func (f *hookFile) sync(op string, fn func() error) error {
	inject, done := f.h.enter(op, f.path)
	defer done()
	if inject != nil {
		return inject
	}
	return fn()
}

func (f *hookFile) Sync() error     { return f.sync("sync", f.File.Sync) }
func (f *hookFile) SyncData() error { return f.sync("sync", f.File.SyncData) }

func (f *hookFile) SyncTo(length int64) (full bool, err error) {
	err = f.sync("sync-to", func() error { full, err = f.File.SyncTo(length); return err })
	return full, err
}

func (f *hookFile) Preallocate(off, length int64) error {
	return f.sync("preallocate", func() error { return f.File.Preallocate(off, length) })
}

// replaceTree replaces directory dir of dst (and its files) by that of
// src, durably.
func replaceTree(dst, src *vfs.MemFS, dir string) error {
	if err := dst.RemoveAll(dir); err != nil {
		return err
	}
	if err := dst.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, err := src.List(dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		path := src.PathJoin(dir, name)
		if st, err := src.Stat(path); err != nil {
			return err
		} else if st.IsDir() {
			if err := replaceTree(dst, src, path); err != nil {
				return err
			}
			continue
		}
		if err := vfs.CopyAcrossFS(src, path, dst, path); err != nil { // syncs the copy
			return err
		}
	}
	for _, d := range []string{dir, dst.PathDir(dir)} {
		f, err := dst.OpenDir(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
