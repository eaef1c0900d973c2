package scan

import (
	"archive/tar"
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// imageLayers builds the test image from real packages (see
// testdata/images/PROVENANCE.md): a Debian 12 base, Debian's python3-*
// packages installed over it, npm packages and a lock file, a Go binary
// built against old modules, and, if withWhiteouts, a last layer that
// removes python3-idna, app/node_modules/qs and app2/node_modules.
func imageLayers(t *testing.T, withWhiteouts bool) (names []string, tars [][]byte) {
	t.Helper()
	dirs := []string{"debian-base", "debian-python", "npm-app"}
	for _, d := range dirs {
		names = append(names, "sha256:layer-"+d)
		tars = append(tars, tarDir(t, filepath.Join("testdata", "images", d)))
	}
	bin := goBinary(t)
	names = append(names, "sha256:layer-gobin")
	tars = append(tars, makeTar(t, []entry{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/local/bin/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/bin/app", Mode: 0o755}, body: bin},
		// Not executables: not read as binaries.
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/share/app.copy", Mode: 0o644}, body: bin},
	}))
	if withWhiteouts {
		names = append(names, "sha256:layer-whiteouts")
		tars = append(tars, tarDir(t, filepath.Join("testdata", "images", "whiteouts")))
	}
	return names, tars
}

// expected findings of the test image: package@version -> advisory ids,
// worked out by hand from the records (see the comments).
func expectedFindings(withWhiteouts bool) map[string][]string {
	want := map[string][]string{
		// Debian's python3-* packages, reported with their PyPI names.
		"urllib3@1.26.12":   {"GHSA-34jh-p97f-mpxf", "GHSA-g4mx-q9vg-27p4", "GHSA-v845-jxx5-vc9f"},
		"requests@2.28.1":   {"GHSA-9wx4-h78v-vm56", "GHSA-j8r2-6x86-q33q"},
		"Jinja2@3.1.2":      {"GHSA-h5c8-rqwp-cp95", "GHSA-h75v-3vvj-5mfj"}, // records say jinja2 and Jinja2
		"idna@3.3":          {"GHSA-jjg7-2v4v-x38h"},
		"certifi@2022.9.24": {"GHSA-xqr8-7jwr-rhp7"}, // zero-padded bounds 2015.04.28..2023.07.22
		// npm: lodash 4.17.20 is fixed for GHSA-p6mc (fixed 4.17.20).
		"lodash@4.17.20":       {"GHSA-29mw-wpgm-hmr9", "GHSA-35jh-r3h4-6jhm"},
		"lodash.trim@4.5.1":    {"GHSA-29mw-wpgm-hmr9"}, // last_affected 4.5.1
		"express@4.19.1":       {"GHSA-qw6h-vgh9-j6wx", "GHSA-rv95-896h-c2vc"},
		"qs@6.5.2":             {"GHSA-hrpp-h998-j3pp"},
		"minimist@1.2.5":       {"GHSA-xvch-5gv4-984h"}, // GHSA-vh95 fixed 1.2.3
		"cookie@0.6.0":         {"GHSA-pxg6-pf52-xh8x"},
		"path-to-regexp@0.1.7": {"GHSA-9wv6-86v2-598j"},
		// semver 7.5.2 (fixed), chalk 5.6.0 (not the listed 5.6.1): none.
		"express@5.0.0-beta.1": {"GHSA-qw6h-vgh9-j6wx", "GHSA-rv95-896h-c2vc"}, // pre-release ranges
		// From package-lock.json (not installed).
		"body-parser@1.20.2":  {"GHSA-qwcr-r2fm-qrc7"},
		"send@0.18.0":         {"GHSA-m6fv-jmcg-4jfg"},
		"serve-static@1.15.0": {"GHSA-cm22-4g7w-348p"},
		// Go: GO-2021-0113 (fixed 0.3.7) and GO-2020-0015 do not apply;
		// GHSA-69ch names the package golang.org/x/text/language.
		"golang.org/x/text@0.3.7": {"GHSA-69ch-w2m2-3vjp", "GO-2022-1059", "GO-2026-5970"},
		"golang.org/x/net@0.0.0-20210226172049-e18ecbb05110": {
			"GO-2022-1144", "GO-2023-1571", "GO-2023-1988", "GO-2023-2102", "GO-2024-2687", "GO-2024-3333",
			"GO-2025-3503", "GO-2025-3595", "GO-2026-4440", "GO-2026-4441", "GO-2026-4918", "GO-2026-5025",
			"GO-2026-5026", "GO-2026-5027", "GO-2026-5028", "GO-2026-5029", "GO-2026-5030", "GO-2026-5942"},
		// gorilla/sessions: GO-2024-2730 is withdrawn. stdlib of this
		// toolchain is past every fix in the data.
	}
	if withWhiteouts {
		delete(want, "idna@3.3")
		delete(want, "qs@6.5.2")
		delete(want, "express@5.0.0-beta.1")
	}
	return want
}

func TestRealImage(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	st, err := db.Import(ctx, filepath.Join("testdata", "osv", "all.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Added != 62 || st.Withdrawn != 2 || st.Bad != 0 {
		t.Fatalf("import: %+v", st)
	}
	for _, withWhiteouts := range []bool{false, true} {
		t.Run(fmt.Sprintf("whiteouts=%v", withWhiteouts), func(t *testing.T) {
			names, tars := imageLayers(t, withWhiteouts)
			var layers []LayerInventory
			for i, tb := range tars {
				inv := analyzeBoth(t, tb, Options{})
				if err := db.PutInventory(ctx, names[i], inv); err != nil {
					t.Fatal(err)
				}
				cached, ok, err := db.Inventory(ctx, names[i])
				if err != nil || !ok {
					t.Fatalf("cached inventory: %v %v", ok, err)
				}
				layers = append(layers, LayerInventory{Digest: names[i], Inventory: cached})
			}
			rep, err := db.Report(ctx, "sha256:image", layers)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, f := range rep.Findings {
				k := f.Package + "@" + f.Version
				got[k] = append(got[k], f.ID)
			}
			want := expectedFindings(withWhiteouts)
			for k := range got {
				sort.Strings(got[k])
			}
			for k, ids := range want {
				sort.Strings(ids)
				if strings.Join(got[k], " ") != strings.Join(ids, " ") {
					t.Errorf("%s: got %v, want %v", k, got[k], ids)
				}
			}
			for k, ids := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: unexpected findings %v", k, ids)
				}
			}
			checkRealInventory(t, rep, withWhiteouts)
		})
	}
}

// checkRealInventory checks the packages around the findings: OS,
// ownership, layers, what the whiteouts remove.
func checkRealInventory(t *testing.T, rep *Report, withWhiteouts bool) {
	t.Helper()
	if rep.OS == nil || rep.OS.ID != "debian" || rep.OS.VersionID != "12" || rep.OS.Layer != "sha256:layer-debian-base" {
		t.Errorf("os: %+v", rep.OS)
	}
	byName := map[string][]Package{}
	for _, p := range rep.Packages {
		byName[p.Name] = append(byName[p.Name], p)
	}
	one := func(name string) Package {
		t.Helper()
		ps := byName[name]
		if len(ps) != 1 {
			t.Fatalf("%s: %d packages: %+v", name, len(ps), ps)
		}
		return ps[0]
	}
	u := one("urllib3")
	if u.OwnedBy != "python3-urllib3" || u.Ecosystem != EcosystemPyPI || u.Layer != "sha256:layer-debian-python" {
		t.Errorf("urllib3: %+v", u)
	}
	ssl := one("libssl3")
	if ssl.Source != "openssl" || ssl.Ecosystem != EcosystemDebian || ssl.Release != "12" {
		t.Errorf("libssl3: %+v", ssl)
	}
	if p := one("packaging"); p.Version != "23.0" || !strings.HasSuffix(p.Path, ".dist-info/METADATA") {
		t.Errorf("packaging: %+v", p)
	}
	if p := one("stdlib"); p.Path != "usr/local/bin/app" {
		t.Errorf("stdlib: %+v", p)
	}
	if ps := byName["golang.org/x/text"]; len(ps) != 1 {
		t.Errorf("the non-executable copy of the binary was read: %+v", ps)
	}
	// Installed packages are reported once, locked ones from the lock.
	if p := one("body-parser"); p.Manager != "npm-lock" || p.Path != "lockapp/package-lock.json" {
		t.Errorf("body-parser: %+v", p)
	}
	idna := byName["idna"]
	idnaDeb := byName["python3-idna"]
	installedQS := 0
	for _, p := range byName["qs"] {
		if p.Path == "app/node_modules/qs/package.json" {
			installedQS++
		}
	}
	if withWhiteouts {
		if len(idna) != 0 || len(idnaDeb) != 0 || installedQS != 0 || len(byName["express"]) != 1 {
			t.Errorf("whited out packages reported: %+v %+v qs %d express %+v", idna, idnaDeb, installedQS, byName["express"])
		}
		// The last layer's status replaced the others', but libssl3 has
		// been in every status since the base layer.
		if ssl.Layer != "sha256:layer-debian-base" {
			t.Errorf("libssl3 layer %s", ssl.Layer)
		}
		if p := one("python3-urllib3"); p.Layer != "sha256:layer-debian-python" {
			t.Errorf("python3-urllib3 layer %s", p.Layer)
		}
	} else if len(idna) != 1 || len(idnaDeb) != 1 || installedQS != 1 || len(byName["express"]) != 2 {
		t.Errorf("idna %+v %+v qs %d express %+v", idna, idnaDeb, installedQS, byName["express"])
	}
	if rep.Stats.Uncompressed == 0 || rep.Stats.ContentRead == 0 || rep.Stats.ContentRead >= rep.Stats.Uncompressed {
		t.Errorf("stats: %+v", rep.Stats)
	}
}
