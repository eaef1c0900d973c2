package refgraph

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chunkyard/chunkyard/chunkstore"
	"github.com/opencontainers/go-digest"
)

// fixture is a small index with one of everything Check looks at:
// repositories with blobs sharing chunks across packs, manifests naming
// them (one blob named twice), an unused link, a mount, an unlinked blob
// and a deleted one (dead chunk records), a pending blob on the queue, a
// split layer, an abandoned conversion, retired packs.
type fixture struct {
	g     *Graph
	seen  map[chunkstore.ID]bool
	off   map[string]int64
	blobs map[string]digest.Digest // "team0/app 3" -> digest
}

const fixtureRecipe = `{"Format":"gzip","Encoder":"klauspost-zstd","Version":"v9"}`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{g: openTest(t), seen: map[chunkstore.ID]bool{}, off: map[string]int64{}, blobs: map[string]digest.Digest{}}
	g := f.g
	for r := range 4 {
		repo := fmt.Sprintf("team%d/app", r)
		var refs []digest.Digest
		for i := range 8 {
			d := digest.FromString(fmt.Sprintf("%s blob %d", repo, i))
			f.blobs[fmt.Sprintf("%s %d", repo, i)] = d
			names := []string{fmt.Sprintf("%s/%d/a", repo, i), fmt.Sprintf("%s/%d/b", repo, i), fmt.Sprintf("%s/%d/c", repo, i),
				fmt.Sprintf("%s/shared/%d", repo, i%3), fmt.Sprintf("global/%d", i%2)}
			pack := fmt.Sprintf("pack-%d-%d", r, i/4)
			if err := g.CommitBlob(repo, d, 500, f.chunks(pack, names...)); err != nil {
				t.Fatal(err)
			}
			if i < 5 {
				refs = append(refs, d)
			}
		}
		m := Manifest{Digest: digest.FromString(repo + " manifest"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 300, Refs: refs}
		if err := g.PutManifest(repo, m, "latest", f.chunks("pack-manifests", repo+"/manifest")); err != nil {
			t.Fatal(err)
		}
		// Blob 6 stays linked, unused; blob 7 is unlinked.
		if err := g.UnlinkBlob(repo, f.blobs[repo+" 7"]); err != nil {
			t.Fatal(err)
		}
	}
	// A second manifest naming blob 0 of team0: its use count is 2.
	m := Manifest{Digest: digest.FromString("team0 second manifest"), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 300,
		Refs: []digest.Digest{f.blobs["team0/app 0"]}}
	if err := g.PutManifest("team0/app", m, "old", f.chunks("pack-manifests", "team0/manifest2")); err != nil {
		t.Fatal(err)
	}
	if err := g.LinkBlob("team1/app", f.blobs["team0/app 1"]); err != nil { // a mount
		t.Fatal(err)
	}
	if _, ok, err := g.DeleteBlob(f.blobs["team0/app 7"], time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("delete blob: %v %v", ok, err)
	}
	if _, err := g.CommitPending("team2/app", digest.FromString("pending"), 1234); err != nil {
		t.Fatal(err)
	}
	layer := digest.FromString("layer")
	if _, err := g.CommitPending("team3/app", layer, 4000); err != nil {
		t.Fatal(err)
	}
	if err := g.ConvertBlob(layer, f.chunks("pack-layers", "layer/h", "layer/x", "global/0"), &Layout{HeaderChunks: 1, TarSize: 5000, Encoding: []byte(fixtureRecipe)}); err != nil {
		t.Fatal(err)
	}
	broken := digest.FromString("broken layer")
	if _, err := g.CommitPending("team3/app", broken, 99); err != nil {
		t.Fatal(err)
	}
	if err := g.AbandonConversion(broken, "not a tar"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.MovePack("pack-repacked", nil, nil); err != nil {
		t.Fatal(err)
	}
	if ok, err := g.RetireUnknownPack("pack-unknown"); err != nil || !ok {
		t.Fatalf("retire unknown: %v %v", ok, err)
	}
	return f
}

// chunks returns names as a push would: written to pack if new, found
// indexed if not.
func (f *fixture) chunks(pack string, names ...string) []chunkstore.Chunk {
	var out []chunkstore.Chunk
	for _, n := range names {
		id := chunkID(n)
		if f.seen[id] {
			out = append(out, chunkstore.Chunk{ID: id, RawLen: 100})
			continue
		}
		f.seen[id] = true
		loc := &chunkstore.Location{Pack: pack, Offset: f.off[pack] + 56, StoredLen: 60 + uint32(len(n)), RawLen: 100, Compressed: true}
		f.off[pack] += 56 + int64(loc.StoredLen)
		out = append(out, chunkstore.Chunk{ID: id, RawLen: 100, Loc: loc})
	}
	return out
}

// raw changes records behind the index's back, in one batch: counters
// move only if fn moves t.stats.
func raw(t *testing.T, g *Graph, fn func(t *txn) error) {
	t.Helper()
	if err := g.update(fn); err != nil {
		t.Fatal(err)
	}
}

// dump returns every record of the index; GC stamps and schedule keys
// by their presence only (a repair stamps at its own time).
func dump(t *testing.T, g *Graph) map[string]string {
	t.Helper()
	out := map[string]string{}
	it, err := g.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k, v := string(it.Key()), string(it.Value())
		for _, p := range []string{prefixUnref, prefixUnused, prefixSchedule} {
			if strings.HasPrefix(k, p) {
				v = "(present)"
			}
		}
		out[k] = v
	}
	return out
}

func diffDumps(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("%q gone", k))
		} else if v != w {
			out = append(out, fmt.Sprintf("%q: %q, now %q", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("%q added", k))
		}
	}
	return out
}

// tinyCheck checks with a memory budget so small that every recount
// spills sorted runs.
func tinyCheck(t *testing.T, g *Graph, repair bool) *CheckReport {
	t.Helper()
	r, err := g.CheckWith(context.Background(), CheckOptions{Repair: repair, TempDir: t.TempDir(), Memory: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.SortRuns == 0 {
		t.Fatal("no sorted run spilled")
	}
	return r
}

// matchProblems fails unless r's problems are exactly one per substring
// in want (in any order).
func matchProblems(t *testing.T, r *CheckReport, want []string) {
	t.Helper()
	used := make([]bool, len(r.Problems))
next:
	for _, w := range want {
		for i, p := range r.Problems {
			if !used[i] && strings.Contains(p, w) {
				used[i] = true
				continue next
			}
		}
		t.Errorf("no problem reads %q", w)
	}
	for i, p := range r.Problems {
		if !used[i] {
			t.Errorf("unexpected problem: %s", p)
		}
	}
}

func blobRecord(t *testing.T, tx *txn, d digest.Digest) blobValue {
	t.Helper()
	bv, err := tx.blob(d)
	if err != nil {
		t.Fatal(err)
	}
	return bv
}

// TestCheckFindsAndRepairsDrift injects each kind of drift into a clean
// index and checks, with a budget that makes every recount spill, that
// Check reports exactly it, that a repair restores every record as it
// was, and that a second check is clean.
func TestCheckFindsAndRepairsDrift(t *testing.T) {
	b2 := "team0/app 2"
	tests := []struct {
		name   string
		inject func(t *testing.T, f *fixture, tx *txn) error
		want   []string // one substring per problem
	}{
		{"blob refs too high", func(t *testing.T, f *fixture, tx *txn) error {
			bv := blobRecord(t, tx, f.blobs[b2])
			bv.refs = 3
			return tx.set(blobKey(f.blobs[b2]), bv.encode())
		}, []string{"refs 3, links 1"}},
		{"blob refs zero, not stamped", func(t *testing.T, f *fixture, tx *txn) error {
			bv := blobRecord(t, tx, f.blobs[b2])
			bv.refs = 0
			return tx.set(blobKey(f.blobs[b2]), bv.encode())
		}, []string{"refs 0, links 1"}},
		{"chunk refs zero", func(t *testing.T, f *fixture, tx *txn) error {
			c, _ := tx.chunk(chunkID("team0/app/2/a"))
			c.Refs = 0
			return tx.set(chunkKey(c.ID), encodeChunk(c))
		}, []string{"refs 0, blob references 1"}},
		{"shared chunk refs too high", func(t *testing.T, f *fixture, tx *txn) error {
			c, _ := tx.chunk(chunkID("global/1"))
			c.Refs += 5
			return tx.set(chunkKey(c.ID), encodeChunk(c))
		}, []string{"blob references"}},
		{"missing unreferenced stamp", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(unrefKey(f.blobs["team1/app 7"]))
		}, []string{"refs 0, unreferenced stamp false"}},
		{"stamp on a referenced blob", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(unrefKey(f.blobs[b2]), encodeTime(time.Now()))
		}, []string{"refs 1, unreferenced stamp true"}},
		{"stamp of a blob not indexed", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(unrefKey(digest.FromString("never")), encodeTime(time.Now()))
		}, []string{"unreferenced stamp of a blob not indexed"}},
		{"pack live bytes", func(t *testing.T, f *fixture, tx *txn) error {
			p, err := decodePack("pack-0-0", mustGet(t, tx, packKey("pack-0-0")))
			p.LiveBytes += 100
			p.LiveChunks--
			return errorsJoin(err, tx.set(packKey(p.Name), encodePack(p)))
		}, []string{"pack pack-0-0: live"}},
		{"use count too high", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(usageKey("team0/app", f.blobs["team0/app 0"]), binary.AppendUvarint(nil, 5))
		}, []string{": 5, manifests 2"}},
		{"use count missing", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(usageKey("team0/app", f.blobs[b2]))
		}, []string{"missing, manifests 1"}},
		{"missing unused stamp", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(unusedKey("team0/app", f.blobs["team0/app 6"]))
		}, []string{"used 0 times, unused stamp false"}},
		{"unused stamp on a used link", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(unusedKey("team0/app", f.blobs[b2]), encodeTime(time.Now()))
		}, []string{"used 1 times, unused stamp true"}},
		{"unused stamp of no link", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(unusedKey("team0/app", digest.FromString("nothing")), encodeTime(time.Now()))
		}, []string{"unused stamp of a link that does not exist"}},
		{"missing catalog entry", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(repoKey("team2/app"))
		}, []string{`repository "team2/app" has links or manifests but no catalog entry`}},
		{"queue entry without schedule", func(t *testing.T, f *fixture, tx *txn) error {
			q, _, err := tx.queued(digest.FromString("pending"))
			return errorsJoin(err, tx.del(scheduleKey(q.due(), digest.FromString("pending"))))
		}, []string{"has no schedule key"}},
		{"schedule of no queue entry", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(scheduleKey(time.Now(), digest.FromString("ghost")), nil)
		}, []string{"schedule key of no queue entry"}},
		{"encoding count wrong", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set([]byte(prefixEncoding+"klauspost-zstd v9"), binary.BigEndian.AppendUint64(nil, 7))
		}, []string{`encoding count "klauspost-zstd v9": 7, layers 1`}},
		{"encoding count missing", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del([]byte(prefixEncoding + "klauspost-zstd v9"))
		}, []string{"missing (1 layers)"}},
		{"counters", func(t *testing.T, f *fixture, tx *txn) error {
			tx.stats.Blobs += 3
			tx.stats.PackBytes -= 10
			return nil
		}, []string{"blobs 42 (recount 39), pack_bytes"}},
		{"several at once", func(t *testing.T, f *fixture, tx *txn) error {
			c, _ := tx.chunk(chunkID("team3/app/5/b"))
			c.Refs = 9
			return errorsJoin(tx.set(chunkKey(c.ID), encodeChunk(c)), tx.del(unrefKey(f.blobs["team2/app 7"])),
				tx.set(usageKey("team1/app", f.blobs["team1/app 4"]), binary.AppendUvarint(nil, 2)))
		}, []string{"refs 9, blob references 1", "unreferenced stamp false", ": 2, manifests 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if r := tinyCheck(t, f.g, false); !r.OK() {
				t.Fatalf("fixture: %q", r.Problems)
			}
			clean := dump(t, f.g)
			raw(t, f.g, func(tx *txn) error { return tt.inject(t, f, tx) })
			r := tinyCheck(t, f.g, false)
			matchProblems(t, r, tt.want)
			if r.Broken != 0 || r.Drift != len(tt.want) {
				t.Errorf("drift %d, broken %d; want %d, 0", r.Drift, r.Broken, len(tt.want))
			}
			if r := tinyCheck(t, f.g, true); !r.Repaired || r.RepairsSkipped != 0 {
				t.Fatalf("repair: %+v", r)
			}
			if r := tinyCheck(t, f.g, false); !r.OK() {
				t.Fatalf("after repair: %q", r.Problems)
			}
			if diff := diffDumps(clean, dump(t, f.g)); len(diff) > 0 {
				t.Fatalf("the repair did not restore the index:\n%s", strings.Join(diff, "\n"))
			}
			var st Stats
			if err := json.Unmarshal([]byte(clean[keyStats]), &st); err != nil || st != f.g.Stats() {
				t.Fatalf("counters in memory %+v, want %+v (%v)", f.g.Stats(), st, err)
			}
		})
	}
}

// TestCheckFindsBroken: references to records that do not exist, chunk
// records in a retired pack and records that do not decode are broken,
// reported with the drift they cause and left alone by a repair.
func TestCheckFindsBroken(t *testing.T) {
	tests := []struct {
		name   string
		inject func(t *testing.T, f *fixture, tx *txn) error
		broken int
		want   []string
	}{
		{"chunk records in a retired pack", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(retiredKey("pack-1-0"), packState{since: time.Now()}.encode())
		}, 4*3 + 3, []string{"pack pack-1-0: garbage collection retired it, but 15 chunk records point into it"}},
		{"chunk not indexed", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(chunkKey(chunkID("team1/app/1/a")))
		}, 1, []string{"held by a blob, but not indexed", "pack pack-1-0: live", "index counters"}},
		{"blob not indexed", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(blobKey(f.blobs["team1/app 6"]))
		}, 1, []string{"linked or a manifest, but not indexed", "refs 1, blob references 0", "refs 1, blob references 0", "refs 1, blob references 0",
			"blob references", "blob references", "pack pack-1-1: live", "index counters"}},
		{"pack not indexed", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.del(packKey("pack-2-1"))
		}, 1, []string{"pack pack-2-1: 12 chunk records point into it, but it is not indexed", "index counters"}},
		{"chunk record does not decode", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(chunkKey(chunkID("team3/app/0/c")), []byte{0xff})
		}, 1, []string{"unknown version", "pack pack-3-0: live", "index counters"}},
		{"blob record does not decode", func(t *testing.T, f *fixture, tx *txn) error {
			return tx.set(blobKey(f.blobs["team3/app 3"]), []byte{2, 1})
		}, 1, []string{"blob record", "blob references", "blob references", "blob references", "blob references", "blob references",
			"pack pack-3-0: live", "index counters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			raw(t, f.g, func(tx *txn) error { return tt.inject(t, f, tx) })
			r := tinyCheck(t, f.g, false)
			matchProblems(t, r, tt.want)
			if r.Broken != tt.broken || r.Drift != len(tt.want)-1 {
				t.Errorf("drift %d, broken %d; want %d, %d", r.Drift, r.Broken, len(tt.want)-1, tt.broken)
			}
			tinyCheck(t, f.g, true)
			if r := tinyCheck(t, f.g, false); r.Broken != tt.broken {
				t.Fatalf("after repair: broken %d, want %d: %q", r.Broken, tt.broken, r.Problems)
			}
		})
	}
}

func mustGet(t *testing.T, tx *txn, key []byte) []byte {
	t.Helper()
	v, err := tx.get(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestStatFieldsCoverStats: the counters Check compares and repairs are
// all of Stats.
func TestStatFieldsCoverStats(t *testing.T) {
	var s Stats
	fields := statFields(&s)
	typ := reflect.TypeOf(s)
	if len(fields) != typ.NumField() {
		t.Fatalf("statFields lists %d counters, Stats has %d", len(fields), typ.NumField())
	}
	for i, f := range fields {
		*f.v = int64(i + 1)
		if tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]; tag != f.name {
			t.Errorf("field %d: %q, Stats says %q", i, f.name, tag)
		}
	}
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if v.Field(i).Int() != int64(i+1) {
			t.Errorf("Stats field %s is not statFields' %d", typ.Field(i).Name, i)
		}
	}
}

// unblocked runs write in a goroutine and fails the test if it does not
// finish within a minute: a check that held the writer mutex while
// scanning would hold it up (the phase hooks run inside the check).
func unblocked(t *testing.T, what string, write func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- write() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s: blocked by the check", what)
	}
}

// TestCheckOnline: writers commit between every two phases of a check
// (pushes, mounts, manifest and blob deletions, a conversion, a repack)
// without waiting for it, and the check, which reads the index as it
// was when it started, finds no drift; nor does a second one.
func TestCheckOnline(t *testing.T) {
	f := newFixture(t)
	g := f.g
	n := 0
	writes := map[string]func() error{
		"links and manifests": func() error {
			return g.CommitBlob("team0/app", digest.FromString("new 1"), 300, f.chunks("pack-new", "new/1", "global/1", "team0/app/0/a"))
		},
		"use counts": func() error {
			m := Manifest{Digest: digest.FromString("new manifest"), MediaType: "m", Size: 1, Refs: []digest.Digest{f.blobs["team0/app 6"], digest.FromString("new 1")}}
			return g.PutManifest("team0/app", m, "new", f.chunks("pack-new", "new/manifest"))
		},
		"repositories": func() error {
			return g.LinkBlob("team9/other", f.blobs["team2/app 3"])
		},
		"blobs": func() error {
			return g.DeleteManifest("team1/app", digest.FromString("team1/app manifest"))
		},
		"chunks": func() error {
			if err := g.UnlinkBlob("team3/app", f.blobs["team3/app 6"]); err != nil {
				return err
			}
			_, _, err := g.DeleteBlob(f.blobs["team3/app 6"], time.Now().Add(time.Hour))
			return err
		},
		"packs": func() error {
			return g.ConvertBlob(digest.FromString("pending"), f.chunks("pack-new", "pending/1", "global/0"), nil)
		},
		"queue": func() error {
			_, err := g.CommitPending("team2/app", digest.FromString("pending 2"), 77)
			return err
		},
		"encodings": func() error { // a repack of the split layer's pack
			ids := []chunkstore.ID{chunkID("layer/h"), chunkID("layer/x")}
			var moved []chunkstore.Chunk
			for i, id := range ids {
				moved = append(moved, chunkstore.Chunk{ID: id, RawLen: 100, Loc: &chunkstore.Location{Pack: "pack-moved", Offset: int64(i) * 200, StoredLen: 90, RawLen: 100}})
			}
			_, err := g.MovePack("pack-layers", ids, moved)
			return err
		},
	}
	r, err := g.CheckWith(context.Background(), CheckOptions{TempDir: t.TempDir(), Memory: 4 << 10, phaseDone: func(phase string) {
		if w := writes[phase]; w != nil {
			unblocked(t, phase, w)
			n++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(writes) {
		t.Fatalf("writes between %d phases, want %d", n, len(writes))
	}
	if !r.OK() {
		t.Fatalf("false drift from writes made during the check: %q", r.Problems)
	}
	if r := tinyCheck(t, g, false); !r.OK() {
		t.Fatalf("after: %q", r.Problems)
	}
}

// TestCheckRepairOnline: drift is found at the snapshot; writers then
// change the very records that drifted before the repairs are applied.
// Counts move by the drift measured (a repair that wrote the recounted
// values would undo the writers' changes), stamps follow the records as
// they are when repaired, and a second check is clean.
func TestCheckRepairOnline(t *testing.T) {
	f := newFixture(t)
	g := f.g
	b2, x := f.blobs["team0/app 2"], chunkID("team0/app/2/a")
	blob6, blob7 := f.blobs["team0/app 6"], f.blobs["team1/app 7"]
	raw(t, g, func(tx *txn) error {
		bv := blobRecord(t, tx, b2)
		bv.refs = 3 // truth 1
		c, _ := tx.chunk(x)
		c.Refs = 0 // truth 1
		tx.stats.Blobs += 3
		return errorsJoin(tx.set(blobKey(b2), bv.encode()), tx.set(chunkKey(x), encodeChunk(c)),
			tx.set(usageKey("team0/app", f.blobs["team0/app 0"]), binary.AppendUvarint(nil, 5)), // truth 2
			tx.del(unusedKey("team0/app", blob6)),                                               // unused: should be stamped
			tx.del(unrefKey(blob7)))                                                             // unreferenced: should be stamped
	})
	r, err := g.CheckWith(context.Background(), CheckOptions{Repair: true, TempDir: t.TempDir(), Memory: 4 << 10, phaseDone: func(phase string) {
		if phase != "scan" {
			return
		}
		unblocked(t, "writes before the repairs", func() error {
			return errorsJoin(
				g.LinkBlob("team3/app", b2), // refs 4, truth 2
				g.CommitBlob("team3/app", digest.FromString("takes x"), 100, f.chunks("pack-new", "team0/app/2/a")), // x: 1, truth 2
				g.DeleteManifest("team0/app", digest.FromString("team0 second manifest")),                           // use count 4, truth 1
				g.PutManifest("team0/app", Manifest{Digest: digest.FromString("uses 6"), MediaType: "m", Size: 1, Refs: []digest.Digest{blob6}}, "",
					f.chunks("pack-new", "uses-6")), // blob 6 used now: no stamp
				g.LinkBlob("team1/app", blob7), // blob 7 referenced again: no stamp
			)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Drift != 6 || !r.Repaired || r.RepairsSkipped != 0 {
		t.Fatalf("check: %+v", r)
	}
	if r := tinyCheck(t, g, false); !r.OK() {
		t.Fatalf("after the repair: %q", r.Problems)
	}
	mustRefs(t, g, b2, 2)
	mustChunkRefs(t, g, "team0/app/2/a", 2)
	if n, _ := g.Usage("team0/app", f.blobs["team0/app 0"]); n != 1 {
		t.Fatalf("use count %d, want 1", n)
	}
}

// TestCheckWhileWritersPush: writers push, delete and convert from their
// own goroutines while checks run; between phases a check waits until
// the writers have committed more (which they could not if it held the
// writer mutex), and no report shows drift.
func TestCheckWhileWritersPush(t *testing.T) {
	f := newFixture(t)
	g := f.g
	var (
		commits   atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		manifests = make(chan digest.Digest, 1000)
		chunksMu  sync.Mutex
	)
	chunks := func(pack string, names ...string) []chunkstore.Chunk {
		chunksMu.Lock()
		defer chunksMu.Unlock()
		return f.chunks(pack, names...)
	}
	writer := func(name string, step func(i int) error) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := step(i); err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				commits.Add(1)
			}
		})
	}
	writer("pusher", func(i int) error {
		d := digest.FromString(fmt.Sprintf("pushed %d", i))
		if err := g.CommitBlob("team5/app", d, 300, chunks("pack-pushes", fmt.Sprintf("pushed/%d", i), "global/1")); err != nil {
			return err
		}
		m := Manifest{Digest: digest.FromString(fmt.Sprintf("pushed manifest %d", i)), MediaType: "m", Size: 1, Refs: []digest.Digest{d}}
		if err := g.PutManifest("team5/app", m, "", chunks("pack-pushes", fmt.Sprintf("pushed/m%d", i))); err != nil {
			return err
		}
		select {
		case manifests <- m.Digest:
		default:
		}
		return nil
	})
	writer("deleter", func(i int) error {
		select {
		case d := <-manifests:
			return g.DeleteManifest("team5/app", d)
		case <-stop:
			return nil
		}
	})
	writer("converter", func(i int) error {
		d := digest.FromString(fmt.Sprintf("pending %d", i))
		if _, err := g.CommitPending("team6/app", d, 10); err != nil {
			return err
		}
		return g.ConvertBlob(d, chunks("pack-converted", fmt.Sprintf("converted/%d", i), "global/0"), nil)
	})
	waitForCommits := func(phase string) {
		want := commits.Load() + 3
		deadline := time.Now().Add(time.Minute)
		for commits.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: writers made no progress during the check", phase)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 3 {
		r, err := g.CheckWith(context.Background(), CheckOptions{TempDir: t.TempDir(), Memory: 4 << 10, phaseDone: waitForCommits})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			t.Fatalf("false drift while writers commit: %q", r.Problems)
		}
	}
	close(stop)
	wg.Wait()
	if r := tinyCheck(t, g, false); !r.OK() {
		t.Fatalf("after: %q", r.Problems)
	}
}
