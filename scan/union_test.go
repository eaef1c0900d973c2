package scan

import (
	"archive/tar"
	"strings"
	"testing"
)

func TestUnionWhiteoutsAndShadows(t *testing.T) {
	base := analyzeBoth(t, makeTar(t, []entry{
		reg("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		reg("var/lib/dpkg/status", "Package: libfoo\nVersion: 1.0-1\nSource: foo\n\nPackage: bash\nVersion: 5.2-1\n"),
		reg("srv/a/node_modules/x/package.json", `{"name":"x","version":"1.0.0"}`),
		reg("srv/b/node_modules/y/package.json", `{"name":"y","version":"1.0.0"}`),
		reg("srv/c/node_modules/z/package.json", `{"name":"z","version":"1.0.0"}`),
		reg("srv/d/node_modules/w/package.json", `{"name":"w","version":"1.0.0"}`),
		reg("srv/lock/package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/x":{"version":"9.0.0"},"node_modules/q":{"version":"2.0.0"}}}`),
		reg("srv/lock/node_modules/x/package.json", `{"name":"x","version":"9.0.0"}`),
	}), Options{})
	top := analyzeBoth(t, makeTar(t, []entry{
		// Whiteout of a directory holding a package.
		reg("srv/a/.wh.node_modules", ""),
		// Opaque directory: hides the lower contents, keeps its own.
		reg("srv/b/.wh..wh..opq", ""),
		reg("srv/b/node_modules/y2/package.json", `{"name":"y2","version":"2.0.0"}`),
		// A package.json replaced by one that is not a package.
		reg("srv/c/node_modules/z/package.json", `{"private":true}`),
		// A new status without libfoo.
		reg("var/lib/dpkg/status", "Package: bash\nVersion: 5.2-2\n"),
		// A whiteout of a file in the same layer as a file is ignored for
		// that layer's own files.
		reg("srv/e/.wh.ignored", ""),
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "srv/d/", Mode: 0o755}},
	}), Options{})
	if len(top.Whiteouts) != 2 || len(top.Opaque) != 1 {
		t.Fatalf("whiteouts %v opaque %v", top.Whiteouts, top.Opaque)
	}
	img := Union([]LayerInventory{{Digest: "sha256:base", Inventory: base}, {Digest: "sha256:top", Inventory: top}})
	got := map[string]string{}
	for _, p := range img.Packages {
		got[p.Name+"@"+p.Version] = p.Layer
	}
	want := map[string]string{
		"bash@5.2-2": "sha256:top", // from the top status
		"y2@2.0.0":   "sha256:top",
		"w@1.0.0":    "sha256:base", // a directory entry above does not hide it
		"x@9.0.0":    "sha256:base", // installed, so not again from the lock
		"q@2.0.0":    "sha256:base", // locked, not installed
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, l := range want {
		if got[k] != l {
			t.Errorf("%s: layer %q, want %q (all: %v)", k, got[k], l, got)
		}
	}
	for _, p := range img.Packages {
		if p.Manager == "dpkg" && (p.Ecosystem != "Debian" || p.Release != "12") {
			t.Errorf("%+v: want Debian 12", p)
		}
		if p.Name == "x" && p.Manager != "npm" {
			t.Errorf("x reported from %s", p.Manager)
		}
	}
	if img.OS == nil || img.OS.Layer != "sha256:base" {
		t.Errorf("os %+v", img.OS)
	}
}

func TestOSEcosystem(t *testing.T) {
	for _, c := range []struct {
		o        OSRelease
		eco, rel string
	}{
		{OSRelease{ID: "debian", VersionID: "12"}, "Debian", "12"},
		{OSRelease{ID: "ubuntu", VersionID: "22.04"}, "Ubuntu", "22.04"},
		{OSRelease{ID: "alpine", VersionID: "3.20.3"}, "Alpine", "v3.20"},
		{OSRelease{ID: "alpine", VersionID: "3.21.0_alpha20240807"}, "Alpine", "v3.21"},
		{OSRelease{ID: "debian"}, "Debian", ""}, // testing, sid: no release
		{OSRelease{ID: "raspbian", VersionID: "12"}, "", ""},
	} {
		if eco, rel := osEcosystem(&c.o); eco != c.eco || rel != c.rel {
			t.Errorf("%+v: got %q %q, want %q %q", c.o, eco, rel, c.eco, c.rel)
		}
	}
}

func TestUnionNotesUnknownRelease(t *testing.T) {
	inv := &Inventory{OS: &OSRelease{ID: "debian", Path: "etc/os-release"},
		Packages: []Package{{Name: "bash", Version: "5.2-1", Ecosystem: "Debian", Manager: "dpkg", Path: "var/lib/dpkg/status"}}}
	img := Union([]LayerInventory{{Digest: "sha256:a", Inventory: inv}})
	if len(img.Notes) != 1 || !strings.Contains(img.Notes[0].Message, "no VERSION_ID") {
		t.Errorf("notes %+v", img.Notes)
	}
	inv.OS = &OSRelease{ID: "debian", VersionID: "12", Path: "etc/os-release"}
	if img := Union([]LayerInventory{{Digest: "sha256:a", Inventory: inv}}); len(img.Notes) != 0 {
		t.Errorf("notes %+v", img.Notes)
	}
}

// A status rewritten by later layers keeps its packages with the layer
// that installed them.
func TestUnionAttributesRewrittenDatabases(t *testing.T) {
	status := func(body string) *Inventory {
		return analyzeBoth(t, makeTar(t, []entry{reg("var/lib/dpkg/status", body)}), Options{})
	}
	base := status("Package: libfoo\nVersion: 1.0-1\n\nPackage: bash\nVersion: 5.2-1\n")
	mid := analyzeBoth(t, makeTar(t, []entry{reg("srv/x/node_modules/x/package.json", `{"name":"x","version":"1.0.0"}`)}), Options{})
	top := status("Package: libfoo\nVersion: 1.0-1\n\nPackage: bash\nVersion: 5.2-2\n\nPackage: curl\nVersion: 8.0-1\n")
	img := Union([]LayerInventory{{"sha256:base", base}, {"sha256:mid", mid}, {"sha256:top", top}})
	got := map[string]string{}
	for _, p := range img.Packages {
		got[p.Name] = p.Layer
	}
	if got["libfoo"] != "sha256:base" || got["bash"] != "sha256:top" || got["curl"] != "sha256:top" || got["x"] != "sha256:mid" {
		t.Errorf("layers %v", got)
	}
	// A layer in between whose status dropped the package breaks the
	// chain: reinstalled later, it belongs to the later layer.
	gap := status("Package: bash\nVersion: 5.2-1\n")
	img = Union([]LayerInventory{{"sha256:base", base}, {"sha256:gap", gap}, {"sha256:top", top}})
	for _, p := range img.Packages {
		if p.Name == "libfoo" && p.Layer != "sha256:top" {
			t.Errorf("libfoo from %s, want sha256:top", p.Layer)
		}
	}
}
