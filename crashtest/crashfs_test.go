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
// made through its crashFS wrappers and, just before operation number at,
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
	mem      *vfs.MemFS
	model    *model
	remote   *remote // nil: none
	rng      *rand.Rand
	unsynced int

	gate sync.RWMutex
	ops  atomic.Int64
	at   atomic.Int64 // 0: disarmed
	step atomic.Value // string: the workload step running

	// With a target phase, the power fails at the targetAt-th operation
	// of that phase instead (see phaseOf).
	target    string
	targetOps atomic.Int64
	targetAt  int64

	mu     sync.Mutex
	fired  bool
	result crashResult
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
	c.unsynced = unsynced
	c.at.Store(c.ops.Load() + n)
}

// armPhase makes the power fail at the n-th next operation of phase.
func (c *crasher) armPhase(phase string, n int64, unsynced int) {
	c.unsynced = unsynced
	c.target, c.targetAt = phase, n
	c.targetOps.Store(0)
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
// the gate until the returned func is called.
func (c *crasher) enter(op string, path string) func() {
	n := c.ops.Add(1)
	phase := phaseOf(c.step.Load().(string), op, path,
		c.remote != nil && c.remote.puts.Load() > 0, c.remote != nil && c.remote.deleted.Swap(false))
	if n == c.at.Load() || c.target != "" && phase == c.target && c.targetOps.Add(1) == c.targetAt {
		c.fire(op, path, phase)
	}
	c.gate.RLock()
	return c.gate.RUnlock
}

// crashFS wraps a file system with a crasher. Reads pass through; every
// operation that changes the file system is counted.
type crashFS struct {
	vfs.FS
	c *crasher
}

func (fs crashFS) Unwrap() vfs.FS { return fs.FS }

func (fs crashFS) wrap(f vfs.File, err error, path string) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &crashFile{File: f, c: fs.c, path: path}, nil
}

func (fs crashFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	defer fs.c.enter("create", name)()
	f, err := fs.FS.Create(name, cat)
	return fs.wrap(f, err, name)
}

func (fs crashFS) Link(oldname, newname string) error {
	defer fs.c.enter("link", newname)()
	return fs.FS.Link(oldname, newname)
}

func (fs crashFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	return fs.wrap(f, err, name)
}

func (fs crashFS) OpenReadWrite(name string, cat vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	defer fs.c.enter("open-rw", name)()
	f, err := fs.FS.OpenReadWrite(name, cat, opts...)
	return fs.wrap(f, err, name)
}

func (fs crashFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	return fs.wrap(f, err, name)
}

func (fs crashFS) Remove(name string) error {
	defer fs.c.enter("remove", name)()
	return fs.FS.Remove(name)
}

func (fs crashFS) RemoveAll(name string) error {
	defer fs.c.enter("remove-all", name)()
	return fs.FS.RemoveAll(name)
}

func (fs crashFS) Rename(oldname, newname string) error {
	defer fs.c.enter("rename", newname)()
	return fs.FS.Rename(oldname, newname)
}

func (fs crashFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	defer fs.c.enter("reuse", newname)()
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	return fs.wrap(f, err, newname)
}

func (fs crashFS) MkdirAll(dir string, perm os.FileMode) error {
	defer fs.c.enter("mkdir", dir)()
	return fs.FS.MkdirAll(dir, perm)
}

func (fs crashFS) Lock(name string) (io.Closer, error) {
	defer fs.c.enter("lock", name)()
	return fs.FS.Lock(name)
}

type crashFile struct {
	vfs.File
	c    *crasher
	path string
}

func (f *crashFile) Write(p []byte) (int, error) {
	defer f.c.enter("write", f.path)()
	return f.File.Write(p)
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	defer f.c.enter("write", f.path)()
	return f.File.WriteAt(p, off)
}

func (f *crashFile) Sync() error {
	defer f.c.enter("sync", f.path)()
	return f.File.Sync()
}

func (f *crashFile) SyncData() error {
	defer f.c.enter("sync", f.path)()
	return f.File.SyncData()
}

func (f *crashFile) SyncTo(length int64) (bool, error) {
	defer f.c.enter("sync-to", f.path)()
	return f.File.SyncTo(length)
}

func (f *crashFile) Preallocate(off, length int64) error {
	defer f.c.enter("preallocate", f.path)()
	return f.File.Preallocate(off, length)
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
