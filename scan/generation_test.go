package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readRecord(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "osv", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFresh: a report stays valid across imports that change none of its
// packages, and not across one that does (a Go record naming a package
// path inside a module the image holds counts), nor across an import a
// crash cut off.
func TestFresh(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	if _, err := db.ImportRecord(ctx, readRecord(t, "npm/GHSA-35jh-r3h4-6jhm.json")); err != nil {
		t.Fatal(err)
	}
	inv := &Inventory{AnalyzerVersion: AnalyzerVersion, Packages: []Package{
		{Name: "lodash", Version: "4.17.20", Ecosystem: EcosystemNPM, Manager: "npm", Path: "a/node_modules/lodash/package.json"},
		{Name: "golang.org/x/text", Version: "v0.3.7", Ecosystem: EcosystemGo, Manager: "go-binary", Path: "usr/bin/app"},
	}}
	r, err := db.Report(ctx, "sha256:img", []LayerInventory{{Digest: "sha256:l1", Inventory: inv}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Feed.Generation != 1 || len(r.Findings) != 1 {
		t.Fatalf("report: generation %d, %d findings", r.Feed.Generation, len(r.Findings))
	}
	fresh := func(want bool, what string) {
		t.Helper()
		cur, ok, err := db.Fresh(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if ok != want {
			t.Fatalf("%s: fresh %v at generation %d, want %v", what, ok, cur.Generation, want)
		}
	}
	fresh(true, "same generation")
	// PyPI and an npm package the image lacks: still fresh.
	if _, err := db.ImportRecord(ctx, readRecord(t, "PyPI/GHSA-34jh-p97f-mpxf.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ImportRecord(ctx, readRecord(t, "npm/GHSA-pxg6-pf52-xh8x.json")); err != nil {
		t.Fatal(err)
	}
	fresh(true, "imports of other packages")
	// The same record again changes nothing: no new generation.
	fi, _ := db.Feed(ctx)
	if _, err := db.ImportRecord(ctx, readRecord(t, "PyPI/GHSA-34jh-p97f-mpxf.json")); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := db.Feed(ctx); fi2.Generation != fi.Generation {
		t.Fatalf("an unchanged record moved the generation %d -> %d", fi.Generation, fi2.Generation)
	}
	// A Go record naming a package of golang.org/x/text.
	if _, err := db.ImportRecord(ctx, readRecord(t, "Go/GHSA-69ch-w2m2-3vjp.json")); err != nil {
		t.Fatal(err)
	}
	fresh(false, "a record naming golang.org/x/text/language")

	// A crash in the middle of an import: the marker stays; until
	// RecoverImport, a report of the current generation stays fresh
	// (it is that generation's); after it, nothing is.
	r, err = db.Report(ctx, "sha256:img", []LayerInventory{{Digest: "sha256:l1", Inventory: inv}})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.Set([]byte(keyImporting), []byte(time.Now().String()))
	if err := db.kv.Apply(&b); err != nil {
		t.Fatal(err)
	}
	if cut, _ := db.Importing(ctx); !cut {
		t.Fatal("marker not seen")
	}
	fresh(true, "import in progress")
	if err := db.RecoverImport(ctx); err != nil {
		t.Fatal(err)
	}
	if cut, _ := db.Importing(ctx); cut {
		t.Fatal("marker left after RecoverImport")
	}
	fresh(false, "after an import cut off")
}

// TestQueue: layers are queued once, due in order, rescheduled with
// attempts counted, taken off by PutInventory, given up on by Abandon
// and queued again by a later Enqueue.
func TestQueue(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n, err := db.Enqueue(ctx, []string{"sha256:a", "sha256:b", "sha256:a"}, t0)
	if err != nil || n != 2 {
		t.Fatalf("Enqueue: %d, %v", n, err)
	}
	if n, _ := db.Enqueue(ctx, []string{"sha256:b", "sha256:c"}, t0.Add(time.Second)); n != 1 {
		t.Fatalf("Enqueue of one queued and one new: %d", n)
	}
	due, next, err := db.Due(ctx, t0, 10)
	if err != nil || len(due) != 2 || !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("Due at t0: %v, next %v, %v", due, next, err)
	}
	if a, err := db.Reschedule(ctx, "sha256:a", t0.Add(time.Hour), true, "chunk missing"); err != nil || a != 1 {
		t.Fatalf("Reschedule: %d, %v", a, err)
	}
	due, _, _ = db.Due(ctx, t0.Add(time.Minute), 10)
	if got := fmt.Sprintln(len(due), due[0].Layer, due[1].Layer); got != "2 sha256:b sha256:c\n" {
		t.Fatalf("due after a's backoff: %s", got)
	}
	if err := db.PutInventory(ctx, "sha256:b", &Inventory{AnalyzerVersion: AnalyzerVersion, Packages: []Package{}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Queued(ctx, "sha256:b"); ok {
		t.Fatal("an analyzed layer stays queued")
	}
	if n, _ := db.Enqueue(ctx, []string{"sha256:b"}, t0); n != 0 {
		t.Fatal("an analyzed layer was queued again")
	}
	if err := db.Abandon(ctx, "sha256:a", "chunk missing", 10, t0); err != nil {
		t.Fatal(err)
	}
	if a, ok, _ := db.AbandonedLayer(ctx, "sha256:a"); !ok || a.Attempts != 10 {
		t.Fatalf("abandoned: %+v %v", a, ok)
	}
	if l, _ := db.QueueLength(ctx); l != 1 {
		t.Fatalf("queue length %d, want 1 (c)", l)
	}
	if n, _ := db.Enqueue(ctx, []string{"sha256:a"}, t0); n != 1 {
		t.Fatal("a layer given up on is not queued again")
	}
	if _, ok, _ := db.AbandonedLayer(ctx, "sha256:a"); ok {
		t.Fatal("queued again but still marked given up")
	}
	if err := db.ForgetLayer(ctx, "sha256:a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Queued(ctx, "sha256:a"); ok {
		t.Fatal("ForgetLayer left the queue entry")
	}
}
