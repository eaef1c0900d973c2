package refgraph

import (
	"errors"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// TestMovePackRefusesResurrected: a chunk of the pack taken up again by a
// push after the repack listed it (so not copied) makes MovePack change
// nothing; a dead one is dropped with the switch.
func TestMovePackRefusesResurrected(t *testing.T) {
	g := openTest(t)
	a, b := digest.FromString("a"), digest.FromString("b")
	if err := g.CommitBlob("r", a, 10, written("p0", "x", "y")); err != nil {
		t.Fatal(err)
	}
	if err := g.CommitBlob("r", b, 10, written("p1", "z")); err != nil {
		t.Fatal(err)
	}
	if err := g.UnlinkBlob("r", a); err != nil {
		t.Fatal(err)
	}
	cut := time.Now().Add(time.Hour)
	if _, ok, err := g.DeleteBlob(a, cut); err != nil || !ok {
		t.Fatalf("delete blob: %v %v", ok, err)
	}
	ids := []chunkstore.ID{chunkID("x"), chunkID("y")}
	// y is taken up again by another blob before the switch.
	if err := g.CommitBlob("r", digest.FromString("c"), 10, deduped("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := g.MovePack("p0", ids, nil); !errors.Is(err, ErrPackInUse) {
		t.Fatalf("MovePack: %v, want ErrPackInUse", err)
	}
	mustChunkRefs(t, g, "y", 1)
	if ok, _ := g.Retired("p0"); ok {
		t.Fatal("pack retired")
	}
	// Copied now: the switch moves y and drops x.
	moved := written("p2", "y")
	n, err := g.MovePack("p0", ids, moved)
	if err != nil || n != 1 {
		t.Fatalf("MovePack: %d, %v", n, err)
	}
	if c, err := g.Chunk(chunkID("y")); err != nil || c.Loc.Pack != "p2" || c.Refs != 1 {
		t.Fatalf("y = %+v, %v", c, err)
	}
	if _, err := g.Chunk(chunkID("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("x still indexed: %v", err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check: %+v %v", r, err)
	}
	if err := g.ForgetPack("p0"); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check after forget: %+v %v", r, err)
	}
}

// TestCheckRepairs: drift written behind the index's back is found and
// repaired.
func TestCheckRepairs(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("a")
	if err := g.CommitBlob("r", d, 10, written("p0", "x", "y")); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("clean index: %+v %v", r, err)
	}
	// Corrupt a chunk's refs and the blob's refs.
	err := g.update(func(tx *txn) error {
		c, err := tx.chunk(chunkID("x"))
		if err != nil {
			return err
		}
		c.Refs = 5
		if err := tx.set(chunkKey(c.ID), encodeChunk(c)); err != nil {
			return err
		}
		bv, err := tx.blob(d)
		if err != nil {
			return err
		}
		bv.refs = 0
		return tx.set(blobKey(d), bv.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.Check(false)
	if err != nil || r.OK() || r.Drift < 2 {
		t.Fatalf("check: %+v %v", r, err)
	}
	if r, err := g.Check(true); err != nil || !r.Repaired {
		t.Fatalf("repair: %+v %v", r, err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("after repair: %+v %v", r, err)
	}
	mustChunkRefs(t, g, "x", 1)
	mustRefs(t, g, d, 1)
}

// TestRetiredPackRefusesLateCommits: chunks a writer appended to a pack
// before GC retired it (they were not indexed yet, so not copied) cannot
// be indexed there afterwards, before or after the pack's deletion: the
// commit gets ErrChunkMissing and the writer stores them again.
func TestRetiredPackRefusesLateCommits(t *testing.T) {
	g := openTest(t)
	// p0: repacked while a write into it was not committed yet.
	if _, err := g.MovePack("p0", []chunkstore.ID{chunkID("late")}, nil); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("late blob")
	if err := g.CommitBlob("r", d, 10, written("p0", "late")); !errors.Is(err, ErrChunkMissing) {
		t.Fatalf("commit into a retired pack: %v", err)
	}
	if err := g.ForgetPack("p0"); err != nil {
		t.Fatal(err)
	}
	if err := g.CommitBlob("r", d, 10, written("p0", "late")); !errors.Is(err, ErrChunkMissing) {
		t.Fatalf("commit into a deleted pack: %v", err)
	}
	// p1: in the backend, unknown to the index for the grace period.
	if ok, err := g.RetireUnknownPack("p1"); err != nil || !ok {
		t.Fatalf("retire unknown: %v %v", ok, err)
	}
	if err := g.CommitBlob("r", d, 10, written("p1", "late")); !errors.Is(err, ErrChunkMissing) {
		t.Fatalf("commit into a retired unknown pack: %v", err)
	}
	// Written again elsewhere, the commit goes through.
	if err := g.CommitBlob("r", d, 10, written("p2", "late")); err != nil {
		t.Fatal(err)
	}
	if ok, err := g.RetireUnknownPack("p2"); err != nil || ok {
		t.Fatalf("a known pack retired as unknown: %v %v", ok, err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check: %+v %v", r, err)
	}
	// Tombstones expire.
	if n, err := g.ExpireTombstones(time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("expired %d tombstones: %v", n, err)
	}
}

// TestCheckCountsEmptyRepos: a repository whose last link went (GC reaped
// it) stays in the catalog, and the recount agrees.
func TestCheckCountsEmptyRepos(t *testing.T) {
	g := openTest(t)
	d := digest.FromString("only")
	if err := g.CommitBlob("empty/soon", d, 10, written("p0", "x")); err != nil {
		t.Fatal(err)
	}
	if err := g.UnlinkBlob("empty/soon", d); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check: %+v %v", r, err)
	}
}
