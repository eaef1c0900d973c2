package refgraph

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/opencontainers/go-digest"
)

func dueDigests(t *testing.T, g *Graph, now time.Time) ([]digest.Digest, time.Time) {
	t.Helper()
	due, next, err := g.DueConversions(now, 10)
	if err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, e := range due {
		out = append(out, e.Digest)
	}
	return out, next
}

// The queue is served oldest first (not in digest order); a failed entry
// waits for its retry time; an abandoned one leaves the queue and is
// listed with its cause; deleting the blob forgets it.
func TestConversionQueueOrderAndBackoff(t *testing.T) {
	g := openTest(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	g.SetClock(func() time.Time { return clock })
	// Push the blob that sorts later by digest first.
	a, b := digest.FromString("a"), digest.FromString("b")
	first, second := a, b
	if a < b {
		first, second = b, a // the one later in digest order is pushed first
	}
	for _, d := range []digest.Digest{first, second} {
		if _, err := g.CommitPending("r", d, 10); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second)
	}
	if got, _ := dueDigests(t, g, clock); len(got) != 2 || got[0] != first {
		t.Fatalf("due = %v, want %s first (pushed first)", got, first)
	}

	retry := clock.Add(time.Minute)
	if n, err := g.ConversionFailed(first, "disk full", retry); err != nil || n != 1 {
		t.Fatalf("ConversionFailed = %d, %v", n, err)
	}
	got, next := dueDigests(t, g, clock)
	if len(got) != 1 || got[0] != second || !next.Equal(retry) {
		t.Fatalf("due = %v next %v, want only %s, next %v", got, next, second, retry)
	}
	if got, _ := dueDigests(t, g, retry); len(got) != 2 || got[0] != second {
		t.Fatalf("at the retry time due = %v", got)
	}
	var entries []QueueEntry
	g.Queue(func(e QueueEntry) error { entries = append(entries, e); return nil })
	if len(entries) != 2 || entries[1].Digest != first || entries[1].Attempts != 1 || entries[1].LastError != "disk full" {
		t.Fatalf("queue = %+v", entries)
	}

	if err := g.AbandonConversion(first, "still full"); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.PendingConversions != 1 || st.FailedConversions != 1 {
		t.Fatalf("stats = %+v", st)
	}
	var failed []FailedConversion
	g.FailedConversions(func(f FailedConversion) error { failed = append(failed, f); return nil })
	if len(failed) != 1 || failed[0].Digest != first || failed[0].Attempts != 2 || failed[0].LastError != "still full" {
		t.Fatalf("failed = %+v", failed)
	}
	if b, err := g.Blob(first); err != nil || b.Kind != KindPending {
		t.Fatalf("abandoned blob = %+v, %v; want it kept as received", b, err)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check: %+v %v", r, err)
	}
	// Deleting the blob forgets its failure.
	if err := g.UnlinkBlob("r", first); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := g.DeleteBlob(first, clock.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if st := g.Stats(); st.FailedConversions != 0 {
		t.Fatalf("stats after delete = %+v", st)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check: %+v %v", r, err)
	}
}

// An index of schema version 1 (queue entries without a schedule) is
// migrated at open: its queue is served, and Check finds nothing amiss.
func TestMigrateVersion1Queue(t *testing.T) {
	dir := t.TempDir()
	g, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("old")
	if _, err := g.CommitPending("r", d, 5); err != nil {
		t.Fatal(err)
	}
	g.Close()
	// Turn it into what version 1 wrote: no w/ key, a bare queue value.
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.DeleteRange([]byte(prefixSchedule), prefixEnd([]byte(prefixSchedule)), nil)
	old, _ := json.Marshal(struct {
		T time.Time `json:"t"`
	}{time.Unix(100, 0).UTC()})
	b.Set(queueKey(d), old, nil)
	b.Set([]byte(keyVersion), []byte("1"), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()

	g, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if v, _ := g.get([]byte(keyVersion)); string(v) != schemaVersion {
		t.Fatalf("version after open = %q", v)
	}
	if got, _ := dueDigests(t, g, time.Unix(200, 0)); len(got) != 1 || got[0] != d {
		t.Fatalf("due after migration = %v", got)
	}
	if r, err := g.Check(false); err != nil || !r.OK() {
		t.Fatalf("check after migration: %+v %v", r, err)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	dir := t.TempDir()
	g, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	db, _ := pebble.Open(dir, &pebble.Options{})
	db.Set([]byte(keyVersion), []byte("99"), pebble.Sync)
	db.Close()
	if _, err := Open(dir, nil); err == nil {
		t.Fatal("opened an index of a newer schema")
	}
}
