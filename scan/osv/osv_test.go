package osv

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testdata = "../testdata/osv"

// load reads one record of the test data.
func load(t *testing.T, rel string) *Vulnerability {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, rel))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return v
}

// affected evaluates every affected entry of v naming pkg.
func affected(t *testing.T, v *Vulnerability, eco, pkg, ver string) Verdict {
	t.Helper()
	for _, a := range v.Affected {
		if a.Package.Name == pkg {
			if vd := a.Evaluate(eco, ver); vd.Affected {
				return vd
			}
		}
	}
	return Verdict{}
}

func TestEvaluateRealRecords(t *testing.T) {
	for _, c := range []struct {
		file, eco, pkg, ver string
		want                bool
		fixed, last         string
	}{
		// last_affected: up to and including 4.5.1.
		{"npm/GHSA-29mw-wpgm-hmr9.json", "npm", "lodash.trim", "4.5.1", true, "", "4.5.1"},
		{"npm/GHSA-29mw-wpgm-hmr9.json", "npm", "lodash.trim", "4.5.2", false, "", ""},
		{"npm/GHSA-29mw-wpgm-hmr9.json", "npm", "lodash", "4.17.20", true, "4.17.21", ""},
		{"npm/GHSA-29mw-wpgm-hmr9.json", "npm", "lodash", "4.17.21", false, "", ""},
		// A versions list only.
		{"npm/MAL-2025-46969.json", "npm", "chalk", "5.6.1", true, "", ""},
		{"npm/MAL-2025-46969.json", "npm", "chalk", "5.6.0", false, "", ""},
		{"npm/MAL-2025-46969.json", "npm", "chalk", "5.6.2", false, "", ""},
		// SEMVER, introduced 0 and no end: every version.
		{"npm/MAL-2025-20690.json", "npm", "flatmap-stream", "0.1.1", true, "", ""},
		// Several ranges; pre-releases.
		{"npm/GHSA-rv95-896h-c2vc.json", "npm", "express", "5.0.0-beta.1", true, "5.0.0-beta.3", ""},
		{"npm/GHSA-rv95-896h-c2vc.json", "npm", "express", "5.0.0-beta.3", false, "", ""},
		{"npm/GHSA-rv95-896h-c2vc.json", "npm", "express", "5.0.0-alpha.1", true, "5.0.0-beta.3", ""},
		{"npm/GHSA-rv95-896h-c2vc.json", "npm", "express", "4.19.1", true, "4.19.2", ""},
		{"npm/GHSA-rv95-896h-c2vc.json", "npm", "express", "4.19.2", false, "", ""},
		{"npm/GHSA-qw6h-vgh9-j6wx.json", "npm", "express", "5.0.0-beta.3", true, "5.0.0", ""},
		{"npm/GHSA-hrpp-h998-j3pp.json", "npm", "qs", "6.5.2", true, "6.5.3", ""},
		{"npm/GHSA-hrpp-h998-j3pp.json", "npm", "qs", "6.5.3", false, "", ""},
		{"npm/GHSA-hrpp-h998-j3pp.json", "npm", "qs", "6.2.4", false, "", ""},
		{"npm/GHSA-hrpp-h998-j3pp.json", "npm", "qs", "6.3.0", true, "6.3.3", ""},
		// PEP 440 with zero-padded calendar versions.
		{"PyPI/GHSA-xqr8-7jwr-rhp7.json", "PyPI", "certifi", "2022.12.7", true, "2023.07.22", ""},
		{"PyPI/GHSA-xqr8-7jwr-rhp7.json", "PyPI", "certifi", "2023.7.22", false, "", ""},
		{"PyPI/GHSA-xqr8-7jwr-rhp7.json", "PyPI", "certifi", "2015.4.27", false, "", ""},
		{"PyPI/GHSA-xqr8-7jwr-rhp7.json", "PyPI", "certifi", "2015.04.28", true, "2023.07.22", ""},
		{"PyPI/GHSA-9wx4-h78v-vm56.json", "PyPI", "requests", "2.32.0", true, "2.32.2", ""},
		{"PyPI/GHSA-9wx4-h78v-vm56.json", "PyPI", "requests", "2.32.2", false, "", ""},
		// dpkg ordering.
		{"Debian/DSA-3029-1.json", "Debian:7", "nginx", "1.2.1-2.2+wheezy2", true, "1.2.1-2.2+wheezy3", ""},
		{"Debian/DSA-3029-1.json", "Debian:7", "nginx", "1.2.1-2.2+wheezy3", false, "", ""},
		{"Debian/DSA-3029-1.json", "Debian:7", "nginx", "1.2.1-2.2+wheezy3+b1", false, "", ""},
		// Go: SEMVER ranges, stdlib's -0 lower bounds.
		{"Go/GO-2022-1059.json", "Go", "golang.org/x/text", "0.3.7", true, "0.3.8", ""},
		{"Go/GO-2022-1059.json", "Go", "golang.org/x/text", "v0.3.8", false, "", ""},
		{"Go/GO-2023-2102.json", "Go", "stdlib", "1.21.2", true, "1.21.3", ""},
		{"Go/GO-2023-2102.json", "Go", "stdlib", "1.21.0-rc.2", true, "1.21.3", ""},
		{"Go/GO-2023-2102.json", "Go", "stdlib", "1.20.10", false, "", ""},
		{"Go/GO-2023-2102.json", "Go", "stdlib", "1.21.3", false, "", ""},
		{"Go/GO-2026-5026.json", "Go", "stdlib", "1.27.0-rc.2", true, "1.27.0-rc.3", ""},
	} {
		v := load(t, c.file)
		got := affected(t, v, c.eco, c.pkg, c.ver)
		if got.Affected != c.want || got.Fixed != c.fixed || got.LastAffected != c.last {
			t.Errorf("%s %s@%s: got %+v, want affected %v fixed %q last %q", c.file, c.pkg, c.ver, got, c.want, c.fixed, c.last)
		}
	}
}

func TestEvaluateSchemaRules(t *testing.T) {
	ev := func(evs ...Event) Affected {
		return Affected{Package: Package{Ecosystem: "npm", Name: "x"}, Ranges: []Range{{Type: RangeSemver, Events: evs}}}
	}
	for _, c := range []struct {
		a    Affected
		ver  string
		want bool
	}{
		// Events out of order are sorted first.
		{ev(Event{Fixed: "1.0.2"}, Event{Introduced: "1.0.0"}), "1.0.1", true},
		{ev(Event{Fixed: "3.2.5"}, Event{Introduced: "3.0.0"}, Event{Fixed: "1.0.2"}, Event{Introduced: "1.0.0"}), "2.0.0", false},
		{ev(Event{Fixed: "3.2.5"}, Event{Introduced: "3.0.0"}, Event{Fixed: "1.0.2"}, Event{Introduced: "1.0.0"}), "3.1.0", true},
		// A limit bounds the range; "*" is infinity.
		{ev(Event{Introduced: "0"}, Event{Limit: "2.0.0"}), "1.9.9", true},
		{ev(Event{Introduced: "0"}, Event{Limit: "2.0.0"}), "2.0.0", false},
		{ev(Event{Introduced: "0"}, Event{Limit: "*"}), "99.0.0", true},
		// Before the first introduced: not affected.
		{ev(Event{Introduced: "1.0.0"}), "0.9.0", false},
	} {
		if got := c.a.Evaluate("npm", c.ver); got.Affected != c.want {
			t.Errorf("%+v @%s: got %v, want %v", c.a.Ranges, c.ver, got.Affected, c.want)
		}
	}
	// GIT ranges are skipped, not guessed.
	a := Affected{Ranges: []Range{{Type: RangeGit, Events: []Event{{Introduced: "0"}}}}}
	if got := a.Evaluate("npm", "1.0.0"); got.Affected || got.Skipped != 1 {
		t.Errorf("GIT range: %+v", got)
	}
	// An ECOSYSTEM version the ordering cannot read is skipped with a reason.
	a = Affected{Ranges: []Range{{Type: RangeEcosystem, Events: []Event{{Introduced: "0"}, {Fixed: "not a version"}}}}}
	if got := a.Evaluate("PyPI", "1.0"); got.Affected || got.Skipped != 1 || got.Reason == "" {
		t.Errorf("bad version: %+v", got)
	}
}

func TestParseStrict(t *testing.T) {
	for name, rec := range map[string]string{
		"two kinds in one event": `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}]}]}`,
		"no introduced":          `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"fixed":"1.0.0"}]}]}]}`,
		"fixed and last":         `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"},{"last_affected":"0.9.0"}]}]}]}`,
		"no id":                  `{"modified":"2024-01-01T00:00:00Z"}`,
		"no modified":            `{"id":"X-1"}`,
		"bad time":               `{"id":"X-1","modified":"yesterday"}`,
		"unknown range type":     `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"DATES","events":[{"introduced":"0"}]}]}]}`,
		"two records":            `{"id":"X-1","modified":"2024-01-01T00:00:00Z"}{"id":"X-2","modified":"2024-01-01T00:00:00Z"}`,
		"empty version":          `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":""}]}]}]}`,
	} {
		if _, err := Parse([]byte(rec)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	// Withdrawn and the Go repository's zero times parse.
	v := load(t, "Go/GO-2022-0617.json")
	if v.Withdrawn == nil || !v.Modified.IsZero() {
		t.Errorf("GO-2022-0617: withdrawn %v modified %v", v.Withdrawn, v.Modified)
	}
	v = load(t, "Go/GO-2022-1059.json")
	if got := v.Affected[0].GoImports(); len(got) != 1 || got[0] != "golang.org/x/text/language" {
		t.Errorf("GO-2022-1059 imports: %v", got)
	}
	if s := load(t, "npm/GHSA-29mw-wpgm-hmr9.json").DatabaseSeverity(); s != "MODERATE" {
		t.Errorf("database severity %q", s)
	}
}

// Every record of the test data parses, loose, zipped, or listed in
// modified_id.csv, and the three agree.
func TestReadPath(t *testing.T) {
	ctx := context.Background()
	count := func(path string, need func(string, time.Time) bool) map[string]int {
		t.Helper()
		got := map[string]int{}
		err := ReadPath(ctx, path, Handler{
			Record: func(r Record) error { got[r.Vuln.ID]++; return nil },
			Bad:    func(name string, err error) { t.Errorf("%s: %v", name, err) },
			Need:   need,
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	zipped := count(filepath.Join(testdata, "all.zip"), nil)
	if len(zipped) != 62 {
		t.Errorf("all.zip: %d records, want 62", len(zipped))
	}
	listed := count(testdata, nil) // modified_id.csv at the top
	if len(listed) != len(zipped) {
		t.Errorf("modified_id.csv: %d records, all.zip %d", len(listed), len(zipped))
	}
	for _, eco := range []string{"npm", "PyPI", "Go", "Debian"} {
		n := len(count(filepath.Join(testdata, eco), nil))
		m := len(count(filepath.Join(testdata, eco, "all.zip"), nil))
		if n == 0 || n != m {
			t.Errorf("%s: %d listed, %d zipped", eco, n, m)
		}
	}
	// Incremental: only what is newer than what we have is read.
	cut := time.Date(2024, 9, 10, 19, 42, 33, 0, time.UTC)
	newer := count(filepath.Join(testdata, "npm"), func(id string, m time.Time) bool { return m.After(cut) })
	if len(newer) != 5 || newer["GHSA-m6fv-jmcg-4jfg"] != 1 || newer["GHSA-cm22-4g7w-348p"] != 0 {
		t.Errorf("incremental after %v: %v", cut, newer)
	}
}

func TestParseModifiedIDs(t *testing.T) {
	in := "2025-10-21T13:27:47.376041Z,GHSA-54wc-49qj-5ghj\n2024-10-04T20:31:00Z,npm/GHSA-pxg6-pf52-xh8x\n2024-01-01T00:00:00.500000Z,X-1\n"
	var got []ModifiedID
	if err := ParseModifiedIDs(strings.NewReader(in), func(m ModifiedID) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Modified.Nanosecond() != 376041000 || got[1].Ecosystem != "npm" || got[1].ID != "GHSA-pxg6-pf52-xh8x" ||
		got[2].Modified.Nanosecond() != 500000000 {
		t.Errorf("got %+v", got)
	}
	for _, bad := range []string{"nonsense\n", "2024-01-01,X\n", "2024-01-01T00:00:00Z,../../etc/passwd\n", "2024-01-01T00:00:00Z,\n"} {
		if err := ParseModifiedIDs(strings.NewReader(bad), func(ModifiedID) error { return nil }); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
