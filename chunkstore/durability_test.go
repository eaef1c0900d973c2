package chunkstore

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// memOpts are small store options on an in-memory file system.
func memOpts(fsys vfs.FS) Options {
	return Options{Dir: "/data/store", FS: fsys, PackSize: 64 << 10,
		MinChunk: 1 << 10, AverageBits: 12, MaxChunk: 16 << 10, Logger: slog.New(slog.DiscardHandler)}
}

// mustReadBack reads chunks from a store and compares them with data.
func mustReadBack(t *testing.T, s *Store, chunks []Chunk, data []byte) {
	t.Helper()
	var got []byte
	for i, c := range chunks {
		b, err := s.ReadChunk(context.Background(), *c.Loc, c.ID, nil)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(data))
	}
}

// TestFreshStoreSurvivesPowerLoss: a store created in a new data dir must
// keep what it acknowledged through a power loss, which needs the new
// directories' own entries made durable, up to the first that existed.
// Opening created Dir/staging and fsynced Dir, but not Dir's parent: the
// power-loss test found a whole store gone with its acknowledged packs
// (crashtest, chain seed 600, before fsutil.MkdirAll).
func TestFreshStoreSurvivesPowerLoss(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := openStore(t, memOpts(mem))
	data := randomBytes(1, 100<<10)
	chunks := mustWrite(t, s, data, nil) // acknowledged: durable
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	s.Close()

	s = openStore(t, memOpts(crashed))
	defer s.Close()
	mustReadBack(t, s, chunks, data)
}

// crashEveryOp runs fn on a crashable in-memory FS and, before each of its
// file operations, checks the state a power loss at that instant leaves
// (0% of unsynced data kept) with check. prepare runs first, unobserved.
func crashEveryOp(t *testing.T, prepare func(fsys vfs.FS), fn func(fsys vfs.FS), check func(t *testing.T, crashed *vfs.MemFS, op errorfs.Op)) {
	t.Helper()
	mem := vfs.NewCrashableMem()
	prepare(mem)
	var clones []*vfs.MemFS
	var ops []errorfs.Op
	observe := errorfs.InjectorFunc(func(op errorfs.Op) error {
		clones = append(clones, mem.CrashClone(vfs.CrashCloneCfg{}))
		ops = append(ops, op)
		return nil
	})
	fn(errorfs.Wrap(mem, observe))
	clones = append(clones, mem.CrashClone(vfs.CrashCloneCfg{}))
	ops = append(ops, errorfs.Op{Path: "(after the last operation)"})
	for i, c := range clones {
		check(t, c, ops[i])
		if t.Failed() {
			t.Fatalf("power loss before operation %d of %d (%v %s)", i+1, len(clones), ops[i].Kind, ops[i].Path)
		}
	}
}

// TestAdoptKeepsPackDurableAtEveryStep: handing a sealed staging pack to
// the local backend must leave it durable under one name at least at every
// instant, even when something else fsyncs staging/ meanwhile (a new pack
// being created does). With a rename, a fsync of staging/ between the
// rename and the fsync of packs/ made the pack's removal from staging/
// durable before its new name.
func TestAdoptKeepsPackDurableAtEveryStep(t *testing.T) {
	const staging, packs = "/data/staging", "/data/packs"
	name := "0123456789abcdef0123456789abcdef"
	data := randomBytes(2, 10<<10)
	prepare := func(fsys vfs.FS) {
		if err := fsys.MkdirAll(staging, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Create(filepath.Join(staging, name), vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(bytes.Clone(data)) // vfs.File.Write may change its argument
		f.Sync()
		f.Close()
		syncDirOrFail(t, fsys, staging)
		syncDirOrFail(t, fsys, "/data")
		syncDirOrFail(t, fsys, "/")
	}
	var mem vfs.FS
	adopt := func(fsys vfs.FS) {
		b, err := NewLocalBackendFS(fsys, packs)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Adopt(context.Background(), name, filepath.Join(staging, name)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, crashed *vfs.MemFS, op errorfs.Op) {
		for _, p := range []string{filepath.Join(staging, name), filepath.Join(packs, name[:2], name)} {
			if b, err := readFile(crashed, p); err == nil && bytes.Equal(b, data) {
				return
			}
		}
		t.Errorf("the pack is nowhere")
	}
	// Every operation of the hand-over also sees staging/ fsynced by
	// someone else just before it.
	crashEveryOp(t, func(fsys vfs.FS) { mem = fsys; prepare(fsys) }, func(fsys vfs.FS) {
		adopt(errorfs.Wrap(fsys, errorfs.InjectorFunc(func(errorfs.Op) error {
			syncDirOrFail(t, mem, staging)
			return nil
		})))
	}, check)
}

// TestRecoveryAtEveryStep: a power loss at any instant of the recovery of
// a pack with a torn tail (rebuilt in a new file) loses nothing the pack
// acknowledged, and the next recovery finishes the job.
func TestRecoveryAtEveryStep(t *testing.T) {
	data := randomBytes(3, 40<<10)
	var chunks []Chunk
	prepare := func(fsys vfs.FS) {
		opts := memOpts(fsys)
		opts.PackSize = 1 << 20 // one open pack
		s := openStore(t, opts)
		chunks = mustWrite(t, s, data, nil)
		// A record past the acknowledged ones, torn by the crash.
		p := s.cur
		if _, err := p.f.WriteAt(recordHeaderFor(t, 5000)[:30], p.size.Load()); err != nil {
			t.Fatal(err)
		}
		p.f.Sync()
		crash(t, s)
	}
	crashEveryOp(t, prepare, func(fsys vfs.FS) {
		opts := memOpts(fsys)
		opts.PackSize = 1 << 20
		openStore(t, opts).Close()
	}, func(t *testing.T, crashed *vfs.MemFS, op errorfs.Op) {
		opts := memOpts(crashed)
		opts.PackSize = 1 << 20
		s := openStore(t, opts)
		defer s.Close()
		mustReadBack(t, s, chunks, data)
		if names, err := crashed.List("/data/store/staging"); err != nil || len(names) != 0 {
			t.Errorf("staging after recovery: %v %v", names, err)
		}
	})
}

func syncDirOrFail(t *testing.T, fsys vfs.FS, dir string) {
	t.Helper()
	d, err := fsys.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readFile(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}
