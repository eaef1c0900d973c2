package refgraph

import (
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func kinds(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind+" "+e.Repo+" "+e.Tag)
	}
	return out
}

func TestOutboxRecordsHoldsAndTrims(t *testing.T) {
	dir := t.TempDir()
	g, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	layer, man := digest.FromString("layer"), digest.FromString("manifest")
	// Before replication is on nothing is recorded.
	if err := g.CommitBlob("r", layer, 100, written("p1", "a")); err != nil {
		t.Fatal(err)
	}
	if err := g.StartOutbox("eu", []string{"us", "ap"}); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Digest: man, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 100, Refs: []digest.Digest{layer}}
	if err := g.PutManifest("r", m, "v1", written("p1", "m")); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteTag("r", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteManifest("r", man); err != nil {
		t.Fatal(err)
	}
	if err := g.UnlinkBlob("r", layer); err != nil {
		t.Fatal(err)
	}
	// SIGKILL-like: close and reopen; the events are in the index.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if g, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.StartOutbox("eu", []string{"us", "ap"}); err != nil {
		t.Fatal(err)
	}
	evs, err := g.OutboxEvents("us", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(evs)
	want := []string{"put r v1", "untag r v1", "delete r "}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %q, want %q", got, want)
		}
	}
	if evs[1].Stamp.Time <= evs[0].Stamp.Time || evs[0].Stamp.Region != "eu" {
		t.Fatalf("untag stamp %+v not after put stamp %+v", evs[1].Stamp, evs[0].Stamp)
	}
	// The put event holds the manifest and the layer from GC.
	cutoff := time.Now().Add(time.Hour)
	for _, d := range []digest.Digest{layer, man} {
		if _, ok, err := g.DeleteBlob(d, cutoff); err != nil || ok {
			t.Fatalf("DeleteBlob(%s) while held = %v, %v; want kept", d, ok, err)
		}
	}
	// One peer acknowledging is not enough.
	if err := g.AckEvents("us", evs[2].Seq); err != nil {
		t.Fatal(err)
	}
	if held, _ := g.Held(layer); !held {
		t.Fatal("hold released while peer ap is behind")
	}
	if evs, _ := g.OutboxEvents("ap", 10); len(evs) != 3 {
		t.Fatalf("ap sees %d events, want 3", len(evs))
	}
	if evs, _ := g.OutboxEvents("us", 10); len(evs) != 0 {
		t.Fatalf("us sees %d events after acknowledging all, want 0", len(evs))
	}
	st, err := g.Outbox()
	if err != nil || len(st) != 2 || st[0].Peer != "ap" || st[0].Pending != 3 || st[1].Pending != 0 || st[0].Oldest.IsZero() {
		t.Fatalf("Outbox() = %+v, %v", st, err)
	}
	// Dropping peer ap from the configuration trims the rest.
	if err := g.StartOutbox("eu", []string{"us"}); err != nil {
		t.Fatal(err)
	}
	if held, _ := g.Held(layer); held {
		t.Fatal("hold kept after every peer has the events")
	}
	for _, d := range []digest.Digest{layer, man} {
		if _, ok, err := g.DeleteBlob(d, cutoff); err != nil || !ok {
			t.Fatalf("DeleteBlob(%s) after trim = %v, %v; want deleted", d, ok, err)
		}
	}
}

func TestReplicatedTagConflict(t *testing.T) {
	g := openTest(t)
	if err := g.StartOutbox("eu", []string{"us"}); err != nil {
		t.Fatal(err)
	}
	a, b := digest.FromString("a"), digest.FromString("b")
	ma := Manifest{Digest: a, MediaType: "x", Size: 100}
	mb := Manifest{Digest: b, MediaType: "x", Size: 100}
	if err := g.PutManifest("r", ma, "t", written("p", "a")); err != nil {
		t.Fatal(err)
	}
	local, d, err := g.TagStamp("r", "t")
	if err != nil || d != a {
		t.Fatal(d, err)
	}
	// An older write from another region loses (the manifest still lands).
	older := Stamp{Time: local.Time - 1, Region: "zz"}
	if tagged, err := g.PutReplicatedManifest("r", mb, "t", older, written("p", "b")); err != nil || tagged {
		t.Fatalf("older stamp: tagged=%v err=%v", tagged, err)
	}
	if _, err := g.Manifest("r", b); err != nil {
		t.Fatal(err)
	}
	// The same time: the greater region wins.
	tie := Stamp{Time: local.Time, Region: "us"}
	if tagged, err := g.PutReplicatedManifest("r", mb, "t", tie, nil); err != nil || !tagged {
		t.Fatalf("tie with region us > eu: tagged=%v err=%v", tagged, err)
	}
	if _, d, _ := g.TagStamp("r", "t"); d != b {
		t.Fatalf("tag -> %s, want %s", d, b)
	}
	// Replicated changes are not recorded; the local put was.
	evs, err := g.OutboxEvents("us", 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events %v, %v; want the local put only", kinds(evs), err)
	}
	// A later local write stamps past the peer's value, whatever the clock.
	g.SetClock(func() time.Time { return time.Unix(0, tie.Time-1000) })
	if err := g.PutManifest("r", ma, "t", nil); err != nil {
		t.Fatal(err)
	}
	st, d, _ := g.TagStamp("r", "t")
	if d != a || !st.After(tie) {
		t.Fatalf("local write after a peer's: %s %+v, want %s after %+v", d, st, a, tie)
	}
	// An untag with an older stamp is ignored; a newer one applies.
	if ok, err := g.ApplyReplicatedUntag("r", "t", tie); err != nil || ok {
		t.Fatalf("older untag applied: %v %v", ok, err)
	}
	if ok, err := g.ApplyReplicatedUntag("r", "t", Stamp{Time: st.Time + 1, Region: "us"}); err != nil || !ok {
		t.Fatalf("newer untag: %v %v", ok, err)
	}
	if _, err := g.ResolveTag("r", "t"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tag after untag: %v", err)
	}
	if ok, err := g.ApplyReplicatedDelete("r", b); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if evs, _ := g.OutboxEvents("us", 10); len(evs) != 2 {
		t.Fatalf("events %v; want the two local puts only", kinds(evs))
	}
}

// TestOutboxRecordsRetention: GC's retention deletions (a tag beyond
// keep-last, an untagged manifest) are replicated like a client's.
func TestOutboxRecordsRetention(t *testing.T) {
	g := openTest(t)
	if err := g.StartOutbox("eu", []string{"us"}); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Digest: digest.FromString("m"), MediaType: "x", Size: 100}
	if err := g.PutManifest("r", m, "old", written("p", "m")); err != nil {
		t.Fatal(err)
	}
	if done, err := g.DeleteTagsIf("r", []TagRecord{{Name: "old", Digest: m.Digest}}); err != nil || !done[0] {
		t.Fatalf("DeleteTagsIf: %v %v", done, err)
	}
	if done, err := g.DeleteUntaggedMany("r", []digest.Digest{m.Digest}); err != nil || !done[0] {
		t.Fatalf("DeleteUntaggedMany: %v %v", done, err)
	}
	evs, err := g.OutboxEvents("us", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(evs)
	if len(got) != 3 || got[1] != "untag r old" || got[2] != "delete r " {
		t.Fatalf("events %q", got)
	}
}
