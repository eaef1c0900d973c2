package gc_test

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/chunkyard/chunkyard/gc"
	"github.com/chunkyard/chunkyard/refgraph"
	"github.com/opencontainers/go-digest"
)

// packWorld is a chunk store with small packs and an index, written to
// directly (no registry): enough packs for the pack check to read many.
type packWorld struct {
	t     *testing.T
	dir   string
	store *chunkstore.Store
	graph *refgraph.Graph
	n     atomic.Int64
}

func newPackWorld(t *testing.T) *packWorld {
	t.Helper()
	w := &packWorld{t: t, dir: t.TempDir()}
	var err error
	w.store, err = chunkstore.Open(context.Background(), chunkstore.Options{Dir: filepath.Join(w.dir, "store"), PackSize: 48 << 10,
		MinChunk: 4 << 10, AverageBits: 13, MaxChunk: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	w.graph, err = refgraph.Open(filepath.Join(w.dir, "index"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.graph.Close() })
	return w
}

// push writes a blob of random bytes and commits it.
func (w *packWorld) push() error {
	i := w.n.Add(1)
	data := randomBytes(uint64(i), 20<<10)
	chunks, _, err := w.store.Write(context.Background(), bytes.NewReader(data), func(id chunkstore.ID) bool {
		ok, _ := w.graph.HasChunk(id)
		return ok
	})
	if err != nil {
		return err
	}
	return w.graph.CommitBlob("fsck/test", digest.FromBytes(data), int64(len(data)), chunks)
}

func (w *packWorld) fsck(o gc.FsckOptions) *gc.FsckReport {
	w.t.Helper()
	return w.fsckOn(w.store, o)
}

func (w *packWorld) fsckOn(s gc.Store, o gc.FsckOptions) *gc.FsckReport {
	w.t.Helper()
	if o.TempDir == "" {
		o.TempDir = w.t.TempDir()
	}
	r, err := gc.FsckWith(context.Background(), w.graph, s, o)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// packFiles returns the sealed packs' files by name.
func (w *packWorld) packFiles() map[string]string {
	w.t.Helper()
	out := map[string]string{}
	root := filepath.Join(w.dir, "store", "packs")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[d.Name()] = path
		}
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// liveChunks returns the live chunk records per pack.
func (w *packWorld) liveChunks() map[string]int {
	w.t.Helper()
	out := map[string]int{}
	if err := w.graph.Chunks(func(c refgraph.Chunk) error {
		if c.Refs > 0 {
			out[c.Loc.Pack]++
		}
		return nil
	}); err != nil {
		w.t.Fatal(err)
	}
	return out
}

const tinyMemory = 2 << 10

// TestFsckPacks: with a budget so small that the sorts spill, the pack
// check reads every sealed pack once, finds a pack gone from the backend
// and one whose records are not the index's, and counts a pack the index
// does not know.
func TestFsckPacks(t *testing.T) {
	w := newPackWorld(t)
	for range 40 {
		if err := w.push(); err != nil {
			t.Fatal(err)
		}
	}
	files := w.packFiles()
	if len(files) < 10 {
		t.Fatalf("%d sealed packs", len(files))
	}
	r := w.fsck(gc.FsckOptions{Memory: tinyMemory, Readers: 3})
	if !r.OK() || r.PacksChecked != len(files) || r.UnknownPacks != 0 || r.SortRuns == 0 || r.Index.SortRuns == 0 {
		t.Fatalf("clean store: %+v, index %+v; %d packs", r, r.Index, len(files))
	}

	live := w.liveChunks()
	var names []string
	for name := range files {
		if live[name] > 0 {
			names = append(names, name)
		}
	}
	gone, swapped, other := names[0], names[1], names[2]
	if err := os.Remove(files[gone]); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(files[other])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[swapped], b, 0o644); err != nil { // the trailer lists other's chunks
		t.Fatal(err)
	}
	unknown := strings.Repeat("f", 32)
	if err := os.WriteFile(filepath.Join(filepath.Dir(files[other]), unknown), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The local backend files packs by the first two characters.
	if err := os.MkdirAll(filepath.Join(w.dir, "store", "packs", "ff"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(filepath.Dir(files[other]), unknown), filepath.Join(w.dir, "store", "packs", "ff", unknown)); err != nil {
		t.Fatal(err)
	}

	r = w.fsck(gc.FsckOptions{Memory: tinyMemory, Readers: 3})
	if !r.Index.OK() {
		t.Fatalf("index: %q", r.Index.Problems)
	}
	want := 1 + live[swapped]
	if r.PackProblemCount != want || len(r.PackProblems) != want || r.UnknownPacks != 1 || r.PacksChecked != len(files)-1 {
		t.Fatalf("got %d problems %q, %d unknown, %d checked; want %d problems, 1 unknown, %d checked",
			r.PackProblemCount, r.PackProblems, r.UnknownPacks, r.PacksChecked, want, len(files)-1)
	}
	gonePack, mismatched := 0, 0
	for _, p := range r.PackProblems {
		switch {
		case strings.HasPrefix(p, "pack "+gone+": ") && strings.Contains(p, "cannot be read"):
			gonePack++
		case strings.Contains(p, "no matching record at "+swapped+"+"):
			mismatched++
		default:
			t.Errorf("unexpected problem: %s", p)
		}
	}
	if gonePack != 1 || mismatched != live[swapped] {
		t.Fatalf("problems %q", r.PackProblems)
	}
}

// racingStore is the chunk store with hooks run before OpenPacks and
// before reading a trailer: what writers and garbage collection do while
// fsck runs.
type racingStore struct {
	*chunkstore.Store
	beforeOpen func()
	beforeRead func(pack string)
}

func (s *racingStore) OpenPacks() []string {
	if s.beforeOpen != nil {
		s.beforeOpen()
	}
	return s.Store.OpenPacks()
}

func (s *racingStore) ReadTrailer(ctx context.Context, pack string) ([]chunkstore.PackEntry, error) {
	if s.beforeRead != nil {
		s.beforeRead(pack)
	}
	return s.Store.ReadTrailer(ctx, pack)
}

// TestFsckOnlinePacks: a pack open at the snapshot and sealed before fsck
// lists the open ones is read from the backend; a pack that garbage
// collection repacks, retires and deletes after the snapshot, before
// fsck reads it, is no problem: the index as it is then says why.
func TestFsckOnlinePacks(t *testing.T) {
	w := newPackWorld(t)
	// The store's chunker polynomial is random, so where packs seal is
	// too: push on until the last push left a pack open.
	var open []string
	for i := 0; len(open) == 0; i++ {
		if i == 100 {
			t.Fatal("no pack left open after 100 pushes")
		}
		if err := w.push(); err != nil {
			t.Fatal(err)
		}
		if i >= 30 {
			open = w.store.OpenPacks()
		}
	}
	if len(open) != 1 || w.liveChunks()[open[0]] == 0 {
		t.Fatalf("open packs %v", open)
	}
	live := w.liveChunks()
	var victim string
	for name := range w.packFiles() {
		if live[name] > 0 {
			victim = name
			break
		}
	}
	ctx := context.Background()
	s := &racingStore{Store: w.store}
	s.beforeOpen = func() {
		if ok, err := w.store.SealOpen(ctx, open[0]); err != nil || !ok {
			t.Errorf("seal: %v %v", ok, err)
		}
	}
	var once sync.Once
	s.beforeRead = func(pack string) {
		once.Do(func() { repackAndDelete(t, w, victim) })
	}
	r := w.fsckOn(s, gc.FsckOptions{Memory: tinyMemory, Readers: 1})
	if !r.OK() || r.ChangedMeanwhile == 0 {
		t.Fatalf("fsck: %+v", r)
	}
	// Every pack of the snapshot but the victim: the one sealed meanwhile
	// too; not the repack's new one, which the snapshot does not know.
	if want := len(w.packFiles()) - 1; r.PacksChecked != want {
		t.Fatalf("checked %d packs, want %d", r.PacksChecked, want)
	}
	if r := w.fsck(gc.FsckOptions{Memory: tinyMemory}); !r.OK() {
		t.Fatalf("after: %+v", r)
	}
}

// repackAndDelete does what garbage collection does to a pack: copy its
// live chunks into a new pack, switch the index, delete the old pack and
// forget it.
func repackAndDelete(t *testing.T, w *packWorld, pack string) {
	ctx := context.Background()
	entries, err := w.store.ReadTrailer(ctx, pack)
	if err != nil {
		t.Fatal(err)
	}
	var ids []chunkstore.ID
	var reads []chunkstore.ChunkRead
	for _, e := range entries {
		ids = append(ids, e.ID)
		if c, err := w.graph.Chunk(e.ID); err == nil && c.Refs > 0 && c.Loc.Pack == pack {
			reads = append(reads, chunkstore.ChunkRead{ID: e.ID, Loc: c.Loc})
		}
	}
	moved, err := w.store.Rewrite(ctx, reads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.SealOpen(ctx, moved[0].Loc.Pack); err != nil {
		t.Fatal(err)
	}
	if _, err := w.graph.MovePack(pack, ids, moved); err != nil {
		t.Fatal(err)
	}
	if err := w.store.DeletePack(ctx, pack); err != nil {
		t.Fatal(err)
	}
	if err := w.graph.ForgetPack(pack); err != nil {
		t.Fatal(err)
	}
}

// TestFsckWhilePushing: pushes go on while fsck runs, from another
// goroutine; no report shows a problem.
func TestFsckWhilePushing(t *testing.T) {
	w := newPackWorld(t)
	for range 20 {
		if err := w.push(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.push(); err != nil {
				errs <- err
				return
			}
		}
	}()
	before := w.n.Load()
	for i := range 3 {
		if r := w.fsck(gc.FsckOptions{Memory: tinyMemory, Readers: 2}); !r.OK() {
			t.Fatalf("fsck %d: %+v %q %q", i, r, r.Index.Problems, r.PackProblems)
		}
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if w.n.Load() == before {
		t.Fatal("no push while fsck ran")
	}
	t.Logf("%d pushes during 3 fsck runs", w.n.Load()-before)
}
