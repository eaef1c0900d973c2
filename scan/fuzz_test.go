package scan

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// fuzzAnalyzer feeds arbitrary bytes to one analyzer as the file at p,
// through a split layer: it must not panic, must not report a package
// with an empty name or version, and must not read past the file.
func fuzzAnalyzer(f *testing.F, p string, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tb := makeTar(t, []entry{{hdr: tarReg(p, 0o644), body: data}}) // not executable: only the analyzer under test reads it
		inv, err := Analyze(context.Background(), splitLayer(t, tb), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pk := range inv.Packages {
			if pk.Name == "" || pk.Version == "" {
				t.Fatalf("package with an empty name or version: %+v", pk)
			}
		}
		if inv.Stats.ContentRead > int64(len(data)) {
			t.Fatalf("read %d bytes of a %d-byte file", inv.Stats.ContentRead, len(data))
		}
	})
}

func seedFile(f *testing.F, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return string(b)
}

func FuzzDpkgStatus(f *testing.F) {
	fuzzAnalyzer(f, "var/lib/dpkg/status",
		seedFile(f, filepath.Join("testdata", "images", "debian-python", "var", "lib", "dpkg", "status")),
		"Package: aa\nVersion: 1:2.3-4\nSource: bb (5.6)\n\nPackage: cc\n")
}

func FuzzAPKInstalled(f *testing.F) {
	fuzzAnalyzer(f, "lib/apk/db/installed",
		seedFile(f, filepath.Join("testdata", "images", "alpine-3.14", "lib", "apk", "db", "installed")),
		"P:a\nV:1.0-r0\no:b\nF:usr/bin\nR:x\n\n")
}

func FuzzPythonMetadata(f *testing.F) {
	fuzzAnalyzer(f, "usr/lib/python3/dist-packages/x-1.0.dist-info/METADATA",
		seedFile(f, filepath.Join("testdata", "images", "debian-python", "usr", "lib", "python3", "dist-packages", "packaging-23.0.dist-info", "METADATA")),
		"Name: x\nVersion: 1.0\n\nbody")
}

func FuzzPackageJSON(f *testing.F) {
	fuzzAnalyzer(f, "app/node_modules/x/package.json",
		seedFile(f, filepath.Join("testdata", "images", "npm-app", "app", "node_modules", "express", "package.json")),
		`{"name":"x","version":"1.0.0"}`)
}

func FuzzPackageLock(f *testing.F) {
	fuzzAnalyzer(f, "app/package-lock.json",
		seedFile(f, filepath.Join("testdata", "images", "npm-app", "lockapp", "package-lock.json")),
		`{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":{"version":"npm:c@2.0.0"}}}}}`)
}

func FuzzOSRelease(f *testing.F) {
	fuzzAnalyzer(f, "etc/os-release",
		seedFile(f, filepath.Join("testdata", "images", "debian-base", "usr", "lib", "os-release")),
		"ID=\"a\\\"b\"\nVERSION_ID='1'\n")
}

// FuzzTarStream: any bytes as a layer's tar stream: no panic, bounded
// work, the same inventory through both views when the tar splits.
func FuzzTarStream(f *testing.F) {
	f.Add(makeTar(f, []entry{reg("var/lib/dpkg/status", "Package: aa\nVersion: 1.0\n"), reg("app/node_modules/x/package.json", `{"name":"x","version":"1.0.0"}`)}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Analyze(context.Background(), &TarLayer{R: bytes.NewReader(data), TempDir: t.TempDir()}, Options{MaxFileSize: 1 << 20})
		if err != nil {
			t.Fatalf("a bad tar is a note, not an error: %v", err)
		}
	})
}
