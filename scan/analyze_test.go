package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func reg(name, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: []byte(body)}
}

func pkgs(inv *Inventory) map[string]Package {
	out := map[string]Package{}
	for _, p := range inv.Packages {
		out[p.Name+"@"+p.Version] = p
	}
	return out
}

func hasNote(inv *Inventory, path, substr string) bool {
	for _, n := range inv.Notes {
		if n.Path == path && strings.Contains(n.Message, substr) {
			return true
		}
	}
	return false
}

func TestDpkg(t *testing.T) {
	status := `Package: libssl3
Status: install ok installed
Priority: optional
Version: 3.0.15-1~deb12u1
Source: openssl
Description: Secure Sockets Layer toolkit
 continuation: Package: not-a-package
 .

Package: libpython3.11-minimal
Status: install ok installed
Source: python3.11 (3.11.2-6+deb12u5)
Version: 3.11.2-6+deb12u5

Package: removed
Status: deinstall ok config-files
Version: 1.0-1

Package: gone
Status: purge ok not-installed
Version: 1.0-1

Package: zlib1g
Status: install ok installed
Version: 1:1.2.13.dfsg-1
Source: zlib (bad version (x))

Package: Bad_Name
Version: 1.0
`
	inv := analyzeBoth(t, makeTar(t, []entry{
		reg("var/lib/dpkg/status", status),
		// distroless: one file per package, no Status field, md5sums beside.
		reg("var/lib/dpkg/status.d/tzdata", "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"),
		reg("var/lib/dpkg/status.d/tzdata.md5sums", "0123 usr/share/zoneinfo/UTC\n"),
	}), Options{})
	got := pkgs(inv)
	want := map[string][2]string{
		"libssl3@3.0.15-1~deb12u1":               {"openssl", "3.0.15-1~deb12u1"},
		"libpython3.11-minimal@3.11.2-6+deb12u5": {"python3.11", "3.11.2-6+deb12u5"},
		"zlib1g@1:1.2.13.dfsg-1":                 {"zlib1g", "1:1.2.13.dfsg-1"}, // bad Source: noted, own name kept
		"tzdata@2024a-0+deb12u1":                 {"tzdata", "2024a-0+deb12u1"},
	}
	if len(got) != len(want) {
		t.Errorf("got %d packages %v, want %d", len(got), got, len(want))
	}
	for k, src := range want {
		p, ok := got[k]
		if !ok || p.Source != src[0] || p.SourceVersion != src[1] || p.Manager != "dpkg" {
			t.Errorf("%s: %+v (ok %v), want source %v", k, p, ok, src)
		}
	}
	if !hasNote(inv, "var/lib/dpkg/status", "bad Source") || !hasNote(inv, "var/lib/dpkg/status", "bad package name") {
		t.Errorf("notes: %+v", inv.Notes)
	}
}

func TestAPKRealDatabase(t *testing.T) {
	inv := analyzeBoth(t, tarDir(t, filepath.Join("testdata", "images", "alpine-3.14")), Options{})
	got := pkgs(inv)
	if len(got) != 26 || len(inv.Notes) != 0 {
		t.Errorf("%d packages, notes %v", len(got), inv.Notes)
	}
	if p := got["libcrypto1.1@1.1.1k-r0"]; p.Source != "openssl" || p.Ecosystem != EcosystemAlpine {
		t.Errorf("libcrypto1.1: %+v", p)
	}
	if p := got["musl@1.2.2-r3"]; p.Path != "lib/apk/db/installed" {
		t.Errorf("musl: %+v", p)
	}
	if inv.OS == nil || inv.OS.ID != "alpine" || inv.OS.VersionID != "3.14.0" {
		t.Errorf("os: %+v", inv.OS)
	}
	img := Union([]LayerInventory{{Digest: "sha256:a", Inventory: inv}})
	for _, p := range img.Packages {
		if p.Release != "v3.14" {
			t.Fatalf("%s: release %q, want v3.14", p.Name, p.Release)
		}
	}
}

func TestOSRelease(t *testing.T) {
	inv := analyzeBoth(t, makeTar(t, []entry{
		reg("usr/lib/os-release", "NAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME='Ubuntu 22.04.4 LTS'\n# comment\nVERSION_CODENAME=jammy\nX=\"a \\\"quoted\\\" \\$value\"\n"),
	}), Options{})
	if inv.OS == nil || inv.OS.ID != "ubuntu" || inv.OS.VersionID != "22.04" || inv.OS.PrettyName != "Ubuntu 22.04.4 LTS" || inv.OS.VersionCodename != "jammy" {
		t.Errorf("os: %+v", inv.OS)
	}
	if got := unquoteShell(`"a \"quoted\" \$value"`); got != `a "quoted" $value` {
		t.Errorf("unquote: %q", got)
	}
	// etc/os-release wins over usr/lib/os-release.
	inv = analyzeBoth(t, makeTar(t, []entry{reg("usr/lib/os-release", "ID=debian\n"), reg("etc/os-release", "ID=alpine\nVERSION_ID=3.20.1\n")}), Options{})
	if inv.OS == nil || inv.OS.ID != "alpine" {
		t.Errorf("os: %+v", inv.OS)
	}
}

func TestPython(t *testing.T) {
	inv := analyzeBoth(t, makeTar(t, []entry{
		reg("usr/lib/python3/dist-packages/six-1.16.0.egg-info", "Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\n\nName: not-this\n"),
		reg("usr/local/lib/python3.11/site-packages/Flask_Cors-4.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: Flask-Cors\nVersion: 4.0.0\nSummary: x\n"),
		reg("srv/x.egg-info/PKG-INFO", "Name: bad name!\nVersion: 1\n"),
		reg("srv/y.dist-info/METADATA", "Summary: no name\n"),
	}), Options{})
	got := pkgs(inv)
	if _, ok := got["six@1.16.0"]; !ok || len(got) != 2 {
		t.Errorf("packages %v", got)
	}
	if NormalizePyPI("Flask_Cors") != "flask-cors" || NormalizePyPI("Jinja2") != "jinja2" || NormalizePyPI("a.-_b") != "a-b" || NormalizePyPI("zope.interface") != "zope-interface" {
		t.Error("PEP 503 normalisation")
	}
	if !hasNote(inv, "srv/x.egg-info/PKG-INFO", "bad distribution name") || !hasNote(inv, "srv/y.dist-info/METADATA", "without Name") {
		t.Errorf("notes: %+v", inv.Notes)
	}
}

func TestNPMLockVersions(t *testing.T) {
	v1 := `{"name":"app","version":"1.0.0","lockfileVersion":1,"requires":true,"dependencies":{
	  "a":{"version":"1.0.0","dependencies":{"b":{"version":"2.0.0"}}},
	  "b":{"version":"1.0.0"},
	  "aliased":{"version":"npm:real@3.0.0"},
	  "@s/scoped":{"version":"npm:@t/other@4.0.0"},
	  "gitdep":{"version":"git+https://example.com/x.git#abc"}}}`
	v2 := `{"name":"app","lockfileVersion":2,"packages":{
	  "":{"name":"app","version":"1.0.0"},
	  "node_modules/x":{"version":"1.2.3"},
	  "node_modules/x/node_modules/@s/y":{"version":"0.1.0-beta.1"},
	  "node_modules/linked":{"resolved":"packages/linked","link":true},
	  "packages/linked":{"name":"linked","version":"9.9.9"}},
	  "dependencies":{"x":{"version":"1.2.3"}}}`
	inv := analyzeBoth(t, makeTar(t, []entry{
		reg("srv/v1/package-lock.json", v1),
		reg("srv/v2/package-lock.json", v2),
		reg("srv/v2/node_modules/x/package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/ignored":{"version":"1.0.0"}}}`),
		reg("srv/bad/package-lock.json", `{"packages":[1,2]}`),
	}), Options{})
	got := map[string]string{}
	for _, p := range inv.Packages {
		got[p.Name+"@"+p.Version] = p.InstallPath
	}
	want := map[string]string{
		"a@1.0.0":           "srv/v1/node_modules/a/package.json",
		"b@2.0.0":           "srv/v1/node_modules/a/node_modules/b/package.json",
		"b@1.0.0":           "srv/v1/node_modules/b/package.json",
		"real@3.0.0":        "srv/v1/node_modules/aliased/package.json",
		"@t/other@4.0.0":    "srv/v1/node_modules/@s/scoped/package.json",
		"x@1.2.3":           "srv/v2/node_modules/x/package.json",
		"@s/y@0.1.0-beta.1": "srv/v2/node_modules/x/node_modules/@s/y/package.json",
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: install path %q, want %q", k, got[k], v)
		}
	}
	if !hasNote(inv, "srv/bad/package-lock.json", "package-lock.json") {
		t.Errorf("notes: %+v", inv.Notes)
	}
}

func TestNPMPackageJSON(t *testing.T) {
	inv := analyzeBoth(t, makeTar(t, []entry{
		reg("app/node_modules/good/package.json", `{"name":"good","version":"1.0.0"}`),
		reg("app/node_modules/@scope/pkg/package.json", `{"name":"@scope/pkg","version":"2.0.0-rc.1"}`),
		reg("app/node_modules/good/lib/package.json", `{"name":"nested-not-a-package","version":"1.0.0"}`),
		reg("app/node_modules/private/package.json", `{"private":true}`),
		reg("app/node_modules/broken/package.json", `{"name":"broken",`),
		reg("app/node_modules/badver/package.json", `{"name":"badver","version":"latest"}`),
		reg("app/node_modules/.bin/package.json", `{"name":"x","version":"1.0.0"}`),
	}), Options{})
	got := pkgs(inv)
	if len(got) != 2 || got["good@1.0.0"].Name == "" || got["@scope/pkg@2.0.0-rc.1"].Name == "" {
		t.Errorf("packages %v", got)
	}
	if !hasNote(inv, "app/node_modules/broken/package.json", "package.json") || !hasNote(inv, "app/node_modules/badver/package.json", "bad name") {
		t.Errorf("notes: %+v", inv.Notes)
	}
}

func TestFileLimitsAndLinks(t *testing.T) {
	big := strings.Repeat("x", 4096)
	inv := analyzeBoth(t, makeTar(t, []entry{
		reg("var/lib/dpkg/status", "Package: aa\nVersion: 1.0\n\n"+big),
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "lib/apk/db/installed", Linkname: "var/lib/dpkg/status"}},
		reg("var/lib/rpm/rpmdb.sqlite", "SQLite format 3\x00"),
	}), Options{MaxFileSize: 1024})
	if len(inv.Packages) != 0 {
		t.Errorf("a file past the cap was read: %+v", inv.Packages)
	}
	if !hasNote(inv, "var/lib/dpkg/status", "more than the 1024-byte cap") ||
		!hasNote(inv, "lib/apk/db/installed", "hard link") ||
		!hasNote(inv, "var/lib/rpm/rpmdb.sqlite", "RPM database not read") {
		t.Errorf("notes: %+v", inv.Notes)
	}
	// A line longer than the line cap is skipped with a note, not kept.
	inv = analyzeBoth(t, makeTar(t, []entry{
		reg("var/lib/dpkg/status", "Package: aa\nVersion: 1.0\nDescription: "+strings.Repeat("y", maxControlLine+10)+"\n\nPackage: bb\nVersion: 2.0\n"),
	}), Options{})
	if got := pkgs(inv); len(got) != 2 || !hasNote(inv, "var/lib/dpkg/status", "longer than") {
		t.Errorf("packages %v notes %v", got, inv.Notes)
	}
}

// A tar that lies: a header claims more bytes than the stream has. The
// entries before the break are analyzed, the layer is marked incomplete
// with a note, and nothing is held in memory beyond the spool cap.
func TestTarThatLies(t *testing.T) {
	good := makeTar(t, []entry{
		reg("var/lib/dpkg/status", "Package: aa\nVersion: 1.0\n"),
		reg("app/node_modules/x/package.json", `{"name":"x","version":"1.0.0"}`),
	})
	// Cut inside the second file's payload.
	cut := bytes.Index(good, []byte(`{"name":"x"`)) + 5
	inv, err := Analyze(context.Background(), &TarLayer{R: bytes.NewReader(good[:cut]), TempDir: t.TempDir()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Incomplete || len(inv.Packages) != 1 || !hasNote(inv, "", "layer not read to its end") {
		t.Errorf("incomplete %v packages %v notes %v", inv.Incomplete, inv.Packages, inv.Notes)
	}
	// A header claiming 1 TiB for a file analyzers want: skipped by the
	// cap, never read.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "var/lib/dpkg/status", Mode: 0o644, Size: 1 << 40})
	tw.Write([]byte("Package: a\n"))
	inv, err = Analyze(context.Background(), &TarLayer{R: bytes.NewReader(buf.Bytes()), TempDir: t.TempDir()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Incomplete || !hasNote(inv, "var/lib/dpkg/status", "cap") {
		t.Errorf("incomplete %v notes %v", inv.Incomplete, inv.Notes)
	}
	// An error from the source is an error (not cached), not a note.
	_, err = Analyze(context.Background(), &TarLayer{R: &failingReader{data: good, n: 600}}, Options{})
	var re *ReadError
	if !errors.As(err, &re) {
		t.Errorf("source failure: got %v, want a ReadError", err)
	}
}

type failingReader struct {
	data []byte
	n    int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), f.n, len(f.data))
	copy(p, f.data[:k])
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

// The split view reads only the files analyzers select, only as far as
// they read them; a storage error fails the analysis.
func TestSplitLayerReadsOnlySelectedFiles(t *testing.T) {
	status := "Package: aa\nVersion: 1.0\n"
	filler := strings.Repeat("z", 1<<20)
	tb := makeTar(t, []entry{
		reg("usr/share/doc/big.txt", filler),
		reg("var/lib/dpkg/status", status),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/notgo", Mode: 0o755}, body: []byte(filler)},
	})
	inv, err := Analyze(context.Background(), splitLayer(t, tb), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The status whole, and 4 bytes of the executable (its magic).
	if want := int64(len(status) + 4); inv.Stats.ContentRead != want || inv.Stats.FilesRead != 2 {
		t.Errorf("read %d bytes of %d files, want %d of 2", inv.Stats.ContentRead, inv.Stats.FilesRead, want)
	}
	if inv.Stats.Uncompressed != int64(len(tb)) || inv.Stats.HeaderBytes == 0 {
		t.Errorf("stats %+v", inv.Stats)
	}
	sl := splitLayer(t, tb)
	sl.Content = errReaderAt{}
	_, err = Analyze(context.Background(), sl, Options{})
	var re *ReadError
	if !errors.As(err, &re) {
		t.Errorf("storage failure: got %v, want a ReadError", err)
	}
}

type errReaderAt struct{}

func (errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("chunk missing") }

// A crafted ELF or a binary that is not Go is not an error; a cut Go
// binary is a note.
func TestGoBinaryCrafted(t *testing.T) {
	elfHeader := append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 2000)...)
	inv := analyzeBoth(t, makeTar(t, []entry{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/fake", Mode: 0o755}, body: elfHeader},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/script", Mode: 0o755}, body: []byte("#!/bin/sh\n" + strings.Repeat("echo\n", 400))},
	}), Options{})
	if len(inv.Packages) != 0 {
		t.Errorf("packages from non-Go files: %+v", inv.Packages)
	}
	exe, err := os.Executable() // this test binary is a Go binary
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	inv = analyzeBoth(t, makeTar(t, []entry{
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/whole", Mode: 0o755}, body: b},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/cut", Mode: 0o755}, body: b[:len(b)/3]},
	}), Options{})
	var whole bool
	for _, p := range inv.Packages {
		if p.Path == "bin/whole" && p.Name == "stdlib" {
			whole = true
		}
		if p.Path == "bin/cut" {
			t.Errorf("package from a cut binary: %+v", p)
		}
	}
	if !whole {
		t.Errorf("no stdlib from the test binary: %+v", inv.Packages)
	}
	if v, ok := GoToolchainSemver("go1.21rc2"); !ok || v != "1.21.0-rc.2" {
		t.Errorf("go1.21rc2: %q", v)
	}
	if v, ok := GoToolchainSemver("go1.22.0 X:boringcrypto"); !ok || v != "1.22.0" {
		t.Errorf("boringcrypto: %q", v)
	}
	if _, ok := GoToolchainSemver("devel go1.23-abcdef"); ok {
		t.Error("devel version accepted")
	}
}

// An executable a dpkg package built without Go installed is not read as
// a Go binary (a split layer does not even fetch it); one from a package
// built with Go, or from no package, is.
func TestGoBinaryOwnership(t *testing.T) {
	bin := smallGoBinary(t)
	status := "Package: gotool\nStatus: install ok installed\nVersion: 1.0-1\nBuilt-Using: golang-1.19 (= 1.19.8-2), golang-golang-x-net (= 1:0.7.0+dfsg-1)\n\n" +
		"Package: ctool\nStatus: install ok installed\nVersion: 2.0-1\nBuilt-Using: gcc-12 (= 12.2.0-14)\n"
	exec := func(name string) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755}, body: bin}
	}
	tb := makeTar(t, []entry{
		exec("usr/bin/gotool"),
		exec("usr/bin/ctool"), // listed as /bin/ctool: merged /usr
		exec("usr/local/bin/unowned"),
		reg("var/lib/dpkg/info/gotool.list", "/.\n/usr\n/usr/bin\n/usr/bin/gotool\n"),
		reg("var/lib/dpkg/info/ctool:amd64.list", "/.\n/bin\n/bin/ctool\n"),
		reg("var/lib/dpkg/status", status),
	})
	inv := analyzeBoth(t, tb, Options{})
	from := map[string]bool{}
	for _, p := range inv.Packages {
		if p.Manager == "go-binary" {
			from[p.Path] = true
			if p.Path == "usr/bin/gotool" && p.OwnedBy != "gotool" {
				t.Errorf("owner of %s: %q", p.Path, p.OwnedBy)
			}
		}
	}
	if !from["usr/bin/gotool"] || from["usr/bin/ctool"] || !from["usr/local/bin/unowned"] {
		t.Errorf("Go packages from %v", from)
	}
	split, err := Analyze(context.Background(), splitLayer(t, tb), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if split.Stats.FilesRead != 5 { // 2 binaries, 2 lists, the status
		t.Errorf("split view opened %d files, want 5", split.Stats.FilesRead)
	}
}
