package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// record builds an OSV record for tests. These are written for the tests
// (the real data has no Debian 12, Ubuntu or Alpine record): their shape
// follows osv.dev's DSA/ALPINE/USN records.
func record(id, modified, eco, name, fixed string, extra string) []byte {
	return []byte(`{"id":"` + id + `","modified":"` + modified + `"` + extra + `,"affected":[{"package":{"ecosystem":"` + eco +
		`","name":"` + name + `"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"` + fixed + `"}]}]}]}`)
}

func importRecords(t *testing.T, db *DB, recs ...[]byte) ImportStats {
	t.Helper()
	var all ImportStats
	for _, r := range recs {
		st, err := db.ImportRecord(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		all.Added += st.Added
		all.Updated += st.Updated
		all.Unchanged += st.Unchanged
		all.Withdrawn += st.Withdrawn
		all.Changed = append(all.Changed, st.Changed...)
	}
	return all
}

func findingIDs(fs []Finding) string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID+":"+f.Package)
	}
	return strings.Join(ids, " ")
}

func TestMatchOSPackages(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	importRecords(t, db,
		record("DSA-0001-1", "2024-01-01T00:00:00Z", "Debian:12", "openssl", "3.0.15-1~deb12u1", ""),
		record("DSA-0002-1", "2024-01-01T00:00:00Z", "Debian:11", "openssl", "9.9.9-1", ""),
		record("DEBIAN-CVE-0003", "2024-01-01T00:00:00Z", "Debian", "openssl", "3.0.12-1", ""),
		record("DSA-0004-1", "2024-01-01T00:00:00Z", "Debian:12", "libssl3", "9.9.9-1", ""), // binary name: not how Debian names them
		record("USN-0005-1", "2024-01-01T00:00:00Z", "Ubuntu:22.04:LTS", "openssl", "3.0.2-0ubuntu1.15", ""),
		record("ALPINE-0006", "2024-01-01T00:00:00Z", "Alpine:v3.14", "openssl", "1.1.1l-r0", ""),
		record("ALPINE-0007", "2024-01-01T00:00:00Z", "Alpine:v3.15", "openssl", "1.1.1l-r0", ""),
	)
	// The real Debian 7 record must not match a Debian 12 nginx.
	if _, err := db.Import(ctx, filepath.Join("testdata", "osv", "Debian", "DSA-3029-1.json")); err != nil {
		t.Fatal(err)
	}
	deb := &Image{Packages: []Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u2", Ecosystem: "Debian", Release: "12", Manager: "dpkg", Source: "openssl", SourceVersion: "3.0.11-1~deb12u2", Path: "var/lib/dpkg/status"},
		{Name: "nginx", Version: "1.2.1-2.2+wheezy2", Ecosystem: "Debian", Release: "12", Manager: "dpkg", Source: "nginx", SourceVersion: "1.2.1-2.2+wheezy2", Path: "var/lib/dpkg/status"},
	}}
	fs, _, err := db.Match(ctx, deb)
	if err != nil {
		t.Fatal(err)
	}
	if got := findingIDs(fs); got != "DEBIAN-CVE-0003:libssl3 DSA-0001-1:libssl3" {
		t.Errorf("Debian 12: %s", got)
	}
	if fs[1].Source != "openssl" || fs[1].Fixed != "3.0.15-1~deb12u1" || fs[1].Ecosystem != "Debian:12" {
		t.Errorf("finding %+v", fs[1])
	}
	// A binNMU (+b1) of a fixed source version is fixed: the source
	// version is what is compared.
	deb.Packages[0].Version, deb.Packages[0].SourceVersion = "3.0.15-1~deb12u1+b1", "3.0.15-1~deb12u1"
	if fs, _, _ := db.Match(ctx, deb); findingIDs(fs) != "" {
		t.Errorf("fixed source version matched: %s", findingIDs(fs))
	}
	ubuntu := &Image{Packages: []Package{{Name: "libssl3", Version: "3.0.2-0ubuntu1.10", Ecosystem: "Ubuntu", Release: "22.04", Manager: "dpkg", Source: "openssl", SourceVersion: "3.0.2-0ubuntu1.10"}}}
	if fs, _, _ := db.Match(ctx, ubuntu); findingIDs(fs) != "USN-0005-1:libssl3" {
		t.Errorf("Ubuntu: %s", findingIDs(fs))
	}
	// The real Alpine 3.14 database: libcrypto1.1 and libssl1.1 come from
	// the openssl origin.
	inv := analyzeBoth(t, tarDir(t, filepath.Join("testdata", "images", "alpine-3.14")), Options{})
	rep, err := db.Report(ctx, "sha256:alpine", []LayerInventory{{Digest: "sha256:a", Inventory: inv}})
	if err != nil {
		t.Fatal(err)
	}
	if got := findingIDs(rep.Findings); got != "ALPINE-0006:libcrypto1.1 ALPINE-0006:libssl1.1" {
		t.Errorf("Alpine 3.14: %s", got)
	}
}

func TestGoPackageIn(t *testing.T) {
	mods := []string{"golang.org/x/text", "cloud.google.com/go", "cloud.google.com/go/storage", "github.com/a/b"}
	for _, c := range []struct {
		pkg, mod string
		want     bool
	}{
		{"golang.org/x/text", "golang.org/x/text", true},
		{"golang.org/x/text/language", "golang.org/x/text", true},
		{"golang.org/x/textual", "golang.org/x/text", false},
		{"cloud.google.com/go/storage/internal", "cloud.google.com/go", false}, // storage is its own module here
		{"cloud.google.com/go/storage/internal", "cloud.google.com/go/storage", true},
		{"cloud.google.com/go/pubsub", "cloud.google.com/go", true},
		{"github.com/a/b/v2", "github.com/a/b", false}, // another major version
		{"github.com/a/b/v2/x", "github.com/a/b", false},
		{"github.com/a/b/v1x", "github.com/a/b", true},
	} {
		if got := goPackageIn(c.pkg, c.mod, mods); got != c.want {
			t.Errorf("goPackageIn(%q, %q) = %v, want %v", c.pkg, c.mod, got, c.want)
		}
	}
}

func TestImportUpdatesAndWithdrawals(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	img := &Image{Packages: []Package{{Name: "left-pad", Version: "1.0.0", Ecosystem: "npm", Manager: "npm", Path: "app/node_modules/left-pad/package.json", Layer: "sha256:l"}}}
	v1 := record("GHSA-test-0001", "2024-01-01T00:00:00Z", "npm", "left-pad", "1.1.0", "")
	st := importRecords(t, db, v1)
	if st.Added != 1 || len(st.Changed) != 1 || st.Changed[0] != (PackageKey{"npm", "left-pad"}) {
		t.Fatalf("first import: %+v", st)
	}
	if fs, _, _ := db.Match(ctx, img); findingIDs(fs) != "GHSA-test-0001:left-pad" || fs[0].Fixed != "1.1.0" || fs[0].Layer != "sha256:l" {
		t.Fatalf("match: %+v", fs)
	}
	if st := importRecords(t, db, v1); st.Unchanged != 1 || len(st.Changed) != 0 {
		t.Errorf("same record again: %+v", st)
	}
	// Fixed earlier than thought: no longer affected.
	v2 := record("GHSA-test-0001", "2024-02-01T00:00:00Z", "npm", "left-pad", "1.0.0", "")
	if st := importRecords(t, db, v2); st.Updated != 1 {
		t.Errorf("update: %+v", st)
	}
	if fs, _, _ := db.Match(ctx, img); len(fs) != 0 {
		t.Errorf("after update: %+v", fs)
	}
	// Renamed package, then withdrawn: the index follows.
	v3 := record("GHSA-test-0001", "2024-03-01T00:00:00Z", "npm", "right-pad", "2.0.0", "")
	st = importRecords(t, db, v3)
	if len(st.Changed) != 2 {
		t.Errorf("rename changed %v, want both names", st.Changed)
	}
	v4 := record("GHSA-test-0001", "2024-04-01T00:00:00Z", "npm", "right-pad", "2.0.0", `,"withdrawn":"2024-04-01T00:00:00Z"`)
	if st := importRecords(t, db, v4); st.Withdrawn != 1 {
		t.Errorf("withdraw: %+v", st)
	}
	n := 0
	db.kv.Scan(ctx, []byte(keyIndex), func(k, _ []byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d index entries left for a withdrawn record", n)
	}
	fi, err := db.Feed(ctx)
	if err != nil || fi.Records != 1 || fi.Withdrawn != 1 || fi.Time.Format("2006-01-02") != "2024-04-01" {
		t.Errorf("feed %+v %v", fi, err)
	}
	raw, err := db.Record(ctx, "GHSA-test-0001")
	if err != nil || !bytes.Equal(raw, v4) {
		t.Errorf("stored record %q %v", raw, err)
	}
}

func TestIncrementalImport(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	st, err := db.Import(ctx, filepath.Join("testdata", "osv"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 62 || st.Bad != 0 {
		t.Fatalf("first import: %+v", st)
	}
	// Again: records with real times are not even read; the Go
	// repository's zero-time records are read and found unchanged.
	st, err = db.Import(ctx, filepath.Join("testdata", "osv"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 0 || st.Updated != 0 || st.Read != 35 || st.Unchanged != 35 {
		t.Errorf("second import: %+v", st)
	}
	fi, _ := db.Feed(ctx)
	if fi.Records != 62 || fi.Withdrawn != 2 || fi.Time.Format("2006-01-02") != "2025-09-12" {
		t.Errorf("feed %+v", fi)
	}
}

func TestLayersNamingAndDelete(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	inv := &Inventory{AnalyzerVersion: AnalyzerVersion, Packages: []Package{
		{Name: "libssl3", Version: "1", Ecosystem: "Debian", Manager: "dpkg", Source: "openssl"},
		{Name: "Jinja2", Version: "3.1.2", Ecosystem: "PyPI", Manager: "python"},
		{Name: "golang.org/x/text", Version: "0.3.7", Ecosystem: "Go", Manager: "go-binary"},
	}}
	if err := db.PutInventory(ctx, "sha256:one", inv); err != nil {
		t.Fatal(err)
	}
	for _, k := range []PackageKey{{"Debian", "openssl"}, {"Ubuntu", "openssl"}, {"PyPI", "jinja2"}, {"Go", "golang.org/x/text/language"}, {"Go", "golang.org/x/text"}} {
		ls, err := db.LayersNaming(ctx, k)
		if err != nil || len(ls) != 1 || ls[0] != "sha256:one" {
			t.Errorf("%+v: %v %v", k, ls, err)
		}
	}
	if ls, _ := db.LayersNaming(ctx, PackageKey{"Debian", "libssl3"}); len(ls) != 0 {
		t.Errorf("binary name found layers %v", ls)
	}
	if err := db.ForgetLayer(ctx, "sha256:one"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Inventory(ctx, "sha256:one"); ok {
		t.Error("inventory left")
	}
	if ls, _ := db.LayersNaming(ctx, PackageKey{"PyPI", "jinja2"}); len(ls) != 0 {
		t.Errorf("reverse index left: %v", ls)
	}
	if err := db.PutInventory(ctx, "bad/digest", inv); err == nil {
		t.Error("a layer key with a slash accepted")
	}
}

func TestReportFormats(t *testing.T) {
	r := &Report{Image: "sha256:abc", Layers: []string{"sha256:l1"},
		Packages: []Package{{Name: "lodash", Version: "4.17.20", Ecosystem: "npm", Manager: "npm", Path: "app/node_modules/lodash/package.json", Layer: "sha256:l1"},
			{Name: "libssl3", Version: "3.0.11-1", Ecosystem: "Debian", Release: "12", Manager: "dpkg", Source: "openssl", Path: "var/lib/dpkg/status", Layer: "sha256:l1"}},
		Findings: []Finding{{ID: "GHSA-29mw-wpgm-hmr9", Aliases: []string{"CVE-2020-28500"}, Package: "lodash", Version: "4.17.20", Ecosystem: "npm",
			Fixed: "4.17.21", SeverityLevel: "MODERATE", Layer: "sha256:l1", Path: "app/node_modules/lodash/package.json"}}}
	var buf bytes.Buffer
	if err := WriteReport(&buf, r, FormatTable); err != nil || !strings.Contains(buf.String(), "GHSA-29mw-wpgm-hmr9") || !strings.Contains(buf.String(), "4.17.21") {
		t.Errorf("table: %v\n%s", err, buf.String())
	}
	for _, f := range []string{FormatJSON, FormatSARIF, FormatCycloneDX} {
		buf.Reset()
		if err := WriteReport(&buf, r, f); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		switch f {
		case FormatSARIF:
			runs := doc["runs"].([]any)
			res := runs[0].(map[string]any)["results"].([]any)
			if doc["version"] != "2.1.0" || len(res) != 1 || res[0].(map[string]any)["ruleId"] != "GHSA-29mw-wpgm-hmr9" {
				t.Errorf("sarif: %s", buf.String())
			}
		case FormatCycloneDX:
			comps := doc["components"].([]any)
			vulns := doc["vulnerabilities"].([]any)
			if doc["specVersion"] != "1.5" || len(comps) != 2 || len(vulns) != 1 {
				t.Fatalf("cyclonedx: %s", buf.String())
			}
			// The vulnerability refers to a component that exists.
			ref := vulns[0].(map[string]any)["affects"].([]any)[0].(map[string]any)["ref"]
			found := false
			for _, c := range comps {
				cm := c.(map[string]any)
				if cm["bom-ref"] == ref {
					found = true
					if cm["purl"] != "pkg:npm/lodash@4.17.20" {
						t.Errorf("purl %v", cm["purl"])
					}
				}
				if cm["name"] == "libssl3" && cm["purl"] != "pkg:deb/debian/libssl3@3.0.11-1?distro=debian-12" {
					t.Errorf("deb purl %v", cm["purl"])
				}
			}
			if !found {
				t.Errorf("vulnerability refers to %v, no such component", ref)
			}
		}
	}
	if err := WriteReport(&buf, r, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}
